"""The actor-critic policy: heads for every action space, normaliser, config round trip."""

import math

import numpy as np
import pytest
import torch

from dnc_core import ActionSpec, ActorCritic, DNCCore, GRUCore, LSTMCore, RunningNorm
from training.rollout import Sequences, replay

SPECS = {
    "discrete": ActionSpec.discrete(3),
    "multi_discrete": ActionSpec.multi_discrete([2, 4]),
    "multi_binary": ActionSpec.multi_binary(5),
    "box": ActionSpec.box([-1.0, -2.0], [1.0, 0.5]),
}


def make_policy(kind, core="dnc"):
    """``core``: a core's name, or ``"dnc+lstm"``: a DNC with a separate critic LSTM."""
    torch.manual_seed(0)
    make = {"dnc": lambda: DNCCore(6, 16, 8, 4, 1), "lstm": lambda: LSTMCore(6, 16),
            "gru": lambda: GRUCore(6, 16)}
    actor, _, critic = core.partition("+")
    return ActorCritic(make[actor](), 6, SPECS[kind],
                       critic_core=make[critic]() if critic else None)


@pytest.mark.parametrize("core", ["dnc", "lstm", "gru", "dnc+lstm"])
@pytest.mark.parametrize("kind", sorted(SPECS))
def test_act_and_the_trainers_replay_agree(kind, core):
    policy = make_policy(kind, core)
    b, t = 4, 5
    obs, resets = torch.randn(b, t, 6), torch.zeros(b, t)
    resets[:, 0] = 1
    resets[1, 3] = 1
    state, actions, log_probs, values = policy.initial_state(b), [], [], []
    with torch.no_grad():
        for i in range(t):
            a, lp, v, state = policy.act(obs[:, i], state, resets[:, i])
            actions.append(a), log_probs.append(lp), values.append(v)
    actions = torch.stack(actions, 1)
    # the trainers' replay (training.rollout.replay) of the whole rollout as b sequences
    seq = Sequences(obs=obs, actions=actions, resets=resets, valid=None, logp=None, value=None,
                    advantages=None, returns=None, start_state=policy.initial_state(b))
    lp2, ent, v2 = replay(policy, policy, seq)
    # Replaying the rollout gives the same log-probs and values as acting did.
    torch.testing.assert_close(lp2, torch.stack(log_probs, 1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(v2, torch.stack(values, 1), rtol=1e-5, atol=1e-5)
    assert lp2.shape == ent.shape == v2.shape == (b, t)
    assert (ent > 0).all()
    # The forward pass over the whole sequence ends in the state the ticks ended in.
    with torch.no_grad():
        _, last = policy(obs, policy.initial_state(b), resets)
    for name, a, want in zip(type(state)._fields, last, state):
        torch.testing.assert_close(a, want, rtol=1e-5, atol=1e-6, msg=name)
    expect_shape = {"discrete": (b, t), "multi_discrete": (b, t, 2), "multi_binary": (b, t, 5),
                    "box": (b, t, 2)}[kind]
    assert actions.shape == expect_shape
    (lp2.mean() + v2.mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in policy.parameters() if p.requires_grad)


def test_an_observation_of_another_rank_is_a_clear_error():
    policy = make_policy("discrete")
    with pytest.raises(ValueError, match=r"must be \[batch, 6\] or \[batch, steps, 6\], "
                                         r"got shape \(2, 3, 4, 6\)"):
        policy(torch.zeros(2, 3, 4, 6), policy.initial_state(2))


def test_distributions_have_the_right_log_probs():
    p = make_policy("discrete")
    out, _ = p(torch.randn(2, 6), p.initial_state(2))
    dist = p.distribution(out)
    a = torch.tensor([0, 2])
    torch.testing.assert_close(dist.log_prob(a), torch.log_softmax(out.dist, -1)[[0, 1], a])
    # A fresh policy (head gain 0.01) is near uniform.
    torch.testing.assert_close(dist.entropy(), torch.full((2,), math.log(3)), atol=1e-3, rtol=0)

    p = make_policy("multi_binary")
    out, _ = p(torch.randn(2, 6), p.initial_state(2))
    a = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 1, 1]])
    lp = torch.nn.functional.logsigmoid(torch.where(a.bool(), out.dist, -out.dist)).sum(-1)
    torch.testing.assert_close(p.distribution(out).log_prob(a), lp)

    p = make_policy("multi_discrete")
    out, _ = p(torch.randn(2, 6), p.initial_state(2))
    a = torch.tensor([[1, 3], [0, 0]])
    l1, l2 = torch.split(out.dist, [2, 4], -1)
    lp = torch.log_softmax(l1, -1).gather(-1, a[:, :1])[:, 0] + \
        torch.log_softmax(l2, -1).gather(-1, a[:, 1:])[:, 0]
    torch.testing.assert_close(p.distribution(out).log_prob(a), lp)


def test_box_actions_gaussian_log_prob_and_clipping():
    p = make_policy("box")
    with torch.no_grad():
        p.log_std.fill_(math.log(0.5))
    out, _ = p(torch.randn(3, 6), p.initial_state(3))
    a = torch.tensor([[0.3, -5.0], [2.0, 0.0], [-1.5, 0.4]])
    expect = torch.distributions.Normal(out.dist, 0.5).log_prob(a).sum(-1)
    torch.testing.assert_close(p.distribution(out).log_prob(a), expect)
    clipped = p.env_action(a)
    torch.testing.assert_close(clipped, torch.tensor([[0.3, -2.0], [1.0, 0.0], [-1.0, 0.4]]))
    det, _, _, _ = p.act(torch.randn(3, 6), p.initial_state(3), deterministic=True)
    assert det.shape == (3, 2)


def test_deterministic_actions_are_the_modes():
    p = make_policy("discrete")
    obs, state = torch.randn(5, 6), p.initial_state(5)
    out, _ = p(obs, state)
    a, _, _, _ = p.act(obs, state, deterministic=True)
    assert torch.equal(a, out.dist.argmax(-1))
    p = make_policy("multi_binary")
    out, _ = p(obs, p.initial_state(5))
    a, _, _, _ = p.act(obs, p.initial_state(5), deterministic=True)
    assert torch.equal(a, (out.dist > 0).long())


def test_running_norm_matches_numpy_over_many_batches():
    rng = np.random.default_rng(0)
    data = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (1, 7, 100, 33)]
    norm = RunningNorm(4)
    for d in data:
        norm.update(torch.from_numpy(d))
    allx = np.concatenate(data)
    np.testing.assert_allclose(norm.mean.numpy(), allx.mean(0), rtol=1e-10)
    np.testing.assert_allclose(norm.var.numpy(), allx.var(0), rtol=1e-10)
    assert norm.count.item() == len(allx)
    x = torch.tensor([[3.0, 3.0, 3.0, 1000.0]])
    y = norm(x)
    assert y.dtype == torch.float32 and y[0, 3] == norm.clip  # clipped
    assert "mean" in norm.state_dict() and "var" in norm.state_dict()


def test_policy_applies_normaliser_and_saves_it():
    p = make_policy("discrete")
    p.obs_norm.update(torch.randn(100, 6) * 5 + 2)
    q = ActorCritic.from_config(p.config())
    q.load_state_dict(p.state_dict())
    obs = torch.randn(2, 6)
    a, b = p(obs, p.initial_state(2))[0], q(obs, q.initial_state(2))[0]
    torch.testing.assert_close(a.dist, b.dist)
    torch.testing.assert_close(a.value, b.value)
    # The normaliser is really in the path: other statistics, other outputs.
    q.obs_norm.mean.add_(10.0)
    assert not torch.allclose(q(obs, q.initial_state(2))[0].value, a.value)


def test_bad_inputs_are_clear_errors():
    p = make_policy("discrete")
    with pytest.raises(ValueError, match="observation has 5 values, expected 6"):
        p(torch.randn(2, 5), p.initial_state(2))
    with pytest.raises(ValueError, match="core input_size 6 != obs_dim 7"):
        ActorCritic(DNCCore(6, 8, 4, 4, 1), 7, ActionSpec.discrete(2))
    with pytest.raises(ValueError, match="unknown action kind 'continuous'"):
        ActionSpec("continuous")
    with pytest.raises(ValueError, match="low > high"):
        ActionSpec.box([1.0], [0.0])
    with pytest.raises(ValueError, match="needs nvec of positive ints"):
        ActionSpec.multi_discrete([3, 0])


def test_action_spec_round_trips_through_plain_data():
    for spec in SPECS.values():
        assert ActionSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("kind", ["discrete", "multi_discrete", "multi_binary", "box"])
def test_sampling_non_finite_parameters_is_one_clear_error(kind):
    """Whatever torch's global argument validation is (torch.compile turns it off), a
    distribution with a NaN or infinite parameter refuses to sample, naming the count;
    finite ones sample as before."""
    from dnc_core.policy import ActionDistribution, NonFiniteDistribution
    spec = {"discrete": ActionSpec("discrete", n=3),
            "multi_discrete": ActionSpec("multi_discrete", nvec=(2, 3)),
            "multi_binary": ActionSpec("multi_binary", n=4),
            "box": ActionSpec("box", low=(-1.0, -1.0), high=(1.0, 1.0))}[kind]
    log_std = torch.zeros(spec.head_size) if kind == "box" else None
    params = torch.zeros(5, spec.head_size)
    ActionDistribution(spec, params, log_std).sample()
    for bad in (float("nan"), float("inf")):
        broken = params.clone()
        broken[2, 0] = bad
        with pytest.raises(NonFiniteDistribution) as e:
            ActionDistribution(spec, broken, log_std).sample()
        assert str(e.value) == (f"the {kind} action distribution has 1 non-finite "
                                f"parameter(s) of {broken.numel() + (2 if kind == 'box' else 0)}"
                                ": the policy's outputs diverged")
    if kind == "box":  # an infinite log-std is a non-finite scale
        with pytest.raises(NonFiniteDistribution):
            ActionDistribution(spec, params, torch.tensor([0.0, float("inf")])).sample()


def test_head_layers_stack_tanh_layers_in_each_head_and_round_trip_through_the_config():
    torch.manual_seed(0)
    p = ActorCritic(LSTMCore(6, 16), 6, SPECS["discrete"], head_hidden=8, head_layers=2)
    for head, out in ((p.actor, SPECS["discrete"].head_size), (p.critic, 1)):
        assert [type(m).__name__ for m in head] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
        assert [(m.in_features, m.out_features) for m in head[::2]] == [(16, 8), (8, 8), (8, out)]
    obs, state = torch.randn(3, 6), p.initial_state(3)
    with torch.no_grad():
        ref = p(obs, state)[0]
        # The second layer is on the path: changing it changes both heads.
        p.actor[2].bias += 1.0
        p.critic[2].bias += 1.0
        moved = p(obs, state)[0]
        p.actor[2].bias -= 1.0
        p.critic[2].bias -= 1.0
    assert (moved.dist - ref.dist).abs().max() > 1e-4
    assert (moved.value - ref.value).abs().min() > 0
    cfg = p.config()
    assert cfg["head_layers"] == 2
    q = ActorCritic.from_config(cfg)
    q.load_state_dict(p.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(q(obs, state)[0].dist, ref.dist)
    # One layer: the module layout and the config of before (older checkpoints load).
    one = ActorCritic(LSTMCore(6, 16), 6, SPECS["discrete"], head_hidden=8)
    assert "head_layers" not in one.config()
    assert [k for k in one.state_dict() if k.startswith(("actor", "critic"))] == [
        f"{h}.{i}.{w}" for h in ("actor", "critic") for i in (0, 2) for w in ("weight", "bias")]
    assert len(ActorCritic.from_config(one.config()).actor) == 3
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="head_layers: expected an integer >= 1"):
            ActorCritic(LSTMCore(6, 16), 6, SPECS["discrete"], head_hidden=8, head_layers=bad)


def test_a_separate_critic_core_alone_feeds_the_value_and_the_actor_core_the_action():
    p = make_policy("discrete", "lstm+gru")
    assert [n for n, _ in p.state_spec] == ["h", "c", "critic_h"]
    assert p.state_spec[2] == ("critic_h", (16,))
    assert set(p.state_bounds) == {"h", "critic_h"}  # an LSTM's c is unbounded
    b, obs = 3, torch.randn(3, 6)
    state = p.initial_state(b)
    assert type(state) is p.state_type and state._fields == ("h", "c", "critic_h")
    with torch.no_grad():  # a state that is not zero, so that every weight matters
        _, state = p(torch.randn(b, 6), state)
    assert type(state) is p.state_type and state.critic_h.abs().sum() > 0
    out, new = p(obs, state)
    # The action's gradient reaches the actor core only, the value's the critic core only.
    out.dist.sum().backward(retain_graph=True)
    assert all(q.grad is None for q in p.critic_core.parameters())
    assert all(q.grad is not None and q.grad.abs().sum() > 0
               for q in p.core.parameters())
    p.zero_grad(set_to_none=True)
    out.value.sum().backward()
    assert all(q.grad is None for q in p.core.parameters())
    assert all(q.grad is not None and q.grad.abs().sum() > 0
               for q in p.critic_core.parameters())
    # Each core's state moves its own head only.
    with torch.no_grad():
        a = p(obs, new._replace(critic_h=torch.full((b, 16), 0.5)))[0]
        c = p(obs, new._replace(h=torch.full((b, 16), 0.5)))[0]
        ref = p(obs, new)[0]
    torch.testing.assert_close(a.dist, ref.dist)
    assert (a.value - ref.value).abs().min() > 0
    torch.testing.assert_close(c.value, ref.value)
    assert (c.dist - ref.dist).abs().max() > 1e-4
    # A reset starts both cores' states over.
    with torch.no_grad():
        fresh, after_fresh = p(obs, p.initial_state(b))
        reset, after_reset = p(obs, state, torch.ones(b))
    torch.testing.assert_close(reset.value, fresh.value)
    torch.testing.assert_close(reset.dist, fresh.dist)
    for x, y in zip(after_reset, after_fresh):
        torch.testing.assert_close(x, y)
    # The config (as checkpoints store it) rebuilds the same policy.
    cfg = p.config()
    assert cfg["critic_core"] == {"kind": "gru", "config": p.critic_core.config()}
    q = ActorCritic.from_config(cfg)
    q.load_state_dict(p.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(q(obs, new)[0].value, ref.value)
    assert "critic_core" not in make_policy("discrete", "lstm").config()  # as before
    with pytest.raises(ValueError, match="state tensor 'critic_h' has shape"):
        p.check_state([torch.zeros(b, 16), torch.zeros(b, 16), torch.zeros(b, 8)], b)
