"""Recurrent PPO: replay from stored states (ratio 1 at the first epoch), the clipped
loss by hand, sequence minibatches covering every valid step once, and the trainer."""

import numpy as np
import pytest
import torch

from training.config import ConfigError, TrainConfig, resolve
from training.ppo import ppo_loss, ppo_update, train
from training.rollout import (Sequences, collect_rollout, minibatches, replay,
                              rollout_advantages, start_carry, to_sequences)
from training.runner import Learner, build_policy, make_envs
from training.spaces import ObsFlattener, action_spec


def tmaze_setup(core="dnc", num_envs=3, **over):
    cfg = TrainConfig(algo="ppo", env="dnc/TMaze-v0", env_kwargs={"length": 5}, core=core,
                      core_config={"hidden_size": 8} if core != "dnc" else
                      {"hidden_size": 8, "memory_slots": 4, "word_size": 4, "read_heads": 1},
                      num_envs=num_envs, rollout_steps=24, bptt=6, num_minibatches=3,
                      **over).validate()
    envs = make_envs(cfg, 0)
    flatten = ObsFlattener(envs.single_observation_space)
    torch.manual_seed(0)
    policy = build_policy(cfg, flatten.dim, action_spec(envs.single_action_space))
    with torch.no_grad():  # a normaliser that is not the identity, as after training
        policy.obs_norm.update(torch.rand(50, flatten.dim))
    carry = start_carry(policy, envs, list(range(num_envs)), torch.device("cpu"))
    return cfg, envs, flatten, policy, carry


def rollout_and_sequences(cfg, envs, flatten, policy, carry):
    r, carry = collect_rollout(policy, envs, carry, cfg.rollout_steps, flatten,
                               envs.single_action_space, cfg.window)
    return r, to_sequences(r, rollout_advantages(r, cfg.gamma, cfg.gae_lambda)), carry


@pytest.mark.parametrize("core, separate_critic", [("dnc", False), ("lstm", False),
                                                   ("lstm", True)])
def test_first_epoch_replay_reproduces_the_rollout_ratio_one(core, separate_critic):
    cfg, envs, flatten, policy, carry = tmaze_setup(core, separate_critic=separate_critic)
    assert (policy.critic_core is not None) == separate_critic
    # A second rollout, so the stored start states hold real memory from the first one.
    _, _, carry = rollout_and_sequences(cfg, envs, flatten, policy, carry)
    r, seq, _ = rollout_and_sequences(cfg, envs, flatten, policy, carry)
    assert any(s.abs().sum() > 0 for s in seq.start_state)
    if separate_critic:  # the critic core's stored states hold real memory too
        assert seq.start_state.critic_h.abs().sum() > 0
    for idx in minibatches(len(seq), cfg.num_minibatches):
        mb = seq.select(idx)
        logp, _, value = replay(policy, policy, mb)
        torch.testing.assert_close(logp, mb.logp, rtol=0, atol=1e-5)
        torch.testing.assert_close(value, mb.value, rtol=0, atol=1e-5)
        ratio = (logp - mb.logp).exp()
        assert (ratio - 1).abs().max() < 1e-4
    envs.close()


def test_ppo_update_steps_change_the_policy_and_stay_finite():
    cfg, envs, flatten, policy, carry = tmaze_setup("dnc", update_epochs=2)
    r, seq, _ = rollout_and_sequences(cfg, envs, flatten, policy, carry)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in policy.parameters()]
    parts = ppo_update(Learner(cfg, policy, policy, opt, world=1), r)
    assert parts["losses/epochs"] == 2 and np.isfinite(list(parts.values())).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    # After the steps the replay no longer matches the collecting policy: ratio != 1.
    with torch.no_grad():
        logp, _, _ = replay(policy, policy, seq)
    assert (logp - seq.logp).abs().max() > 1e-4
    envs.close()


def test_target_kl_stops_the_epochs_early():
    cfg, envs, flatten, policy, carry = tmaze_setup("lstm", update_epochs=50, target_kl=1e-6,
                                                    lr=1e-2)
    r, _, _ = rollout_and_sequences(cfg, envs, flatten, policy, carry)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    parts = ppo_update(Learner(cfg, policy, policy, opt, world=1), r)
    assert parts["losses/epochs"] < 50
    envs.close()


def seq_of(adv, ret, logp_old, value_old, valid):
    t = lambda x: torch.tensor([x], dtype=torch.float32)  # noqa: E731
    z = torch.zeros(1, len(adv))
    return Sequences(obs=z[..., None], actions=z.long(), resets=z, valid=t(valid),
                     logp=t(logp_old), value=t(value_old), advantages=t(adv), returns=t(ret),
                     start_state=())


def test_clipped_loss_equals_a_hand_computation():
    eps, vclip = 0.2, 0.5
    adv = [1.0, -1.0, 3.0, -2.0, 50.0]
    ret = [1.0, 0.0, 2.0, -1.0, 9.0]
    old_logp = [-1.0, -1.0, -1.0, -1.0, -1.0]
    old_v = [0.0, 0.0, 1.5, 0.0, 0.0]
    valid = [1.0, 1.0, 1.0, 1.0, 0.0]
    new_logp = torch.tensor([[-1.0 + np.log(1.5), -1.0 + np.log(0.5), -1.0 + np.log(1.1),
                              -1.0 + np.log(1.3), -1.0 + np.log(5.0)]], dtype=torch.float32)
    new_v = torch.tensor([[2.0, -0.2, 1.6, -1.0, 0.0]])
    entropy = torch.tensor([[0.5, 0.4, 0.3, 0.2, 9.0]])
    cfg = TrainConfig(algo="ppo", normalize_advantages=False, value_coef=0.5,
                      entropy_coef=0.01, clip_value=vclip)
    loss, parts = ppo_loss(new_logp, entropy, new_v, seq_of(adv, ret, old_logp, old_v, valid),
                           cfg, eps)
    r = np.array([1.5, 0.5, 1.1, 1.3])
    a = np.array(adv[:4])
    surr = np.maximum(-a * r, -a * np.clip(r, 1 - eps, 1 + eps))
    # By hand: row 0 clipped at 1.2 (A > 0); row 1 clipped at 0.8 (A < 0); row 2 inside;
    # row 3 (A < 0, r > 1 + eps) keeps the unclipped, larger loss 2.6.
    assert surr.tolist() == pytest.approx([-1.2, 0.8, -3.3, 2.6])
    v, v_old, R = np.array([2.0, -0.2, 1.6, -1.0]), np.array(old_v[:4]), np.array(ret[:4])
    v_clip = v_old + np.clip(v - v_old, -vclip, vclip)
    vl = 0.5 * np.mean(np.maximum((v - R) ** 2, (v_clip - R) ** 2))
    ent = np.mean([0.5, 0.4, 0.3, 0.2])
    assert parts["losses/policy"] == pytest.approx(surr.mean(), rel=1e-5)
    assert parts["losses/value"] == pytest.approx(vl, rel=1e-5)
    assert loss.item() == pytest.approx(surr.mean() + 0.5 * vl - 0.01 * ent, rel=1e-5)
    assert parts["losses/clip_frac"] == pytest.approx(3 / 4)  # rows 0, 1, 3


def test_minibatches_of_sequences_hold_every_valid_step_exactly_once():
    cfg, envs, flatten, policy, carry = tmaze_setup("lstm", num_envs=4)
    r, _, _ = rollout_and_sequences(cfg, envs, flatten, policy, carry)
    # Tag every (t, b) with a unique id and follow it through sequences and minibatches.
    ids = torch.arange(r.steps * 4, dtype=torch.float32).reshape(r.steps, 4)
    seq = to_sequences(r, ids)  # the advantages slot carries the ids
    seen = []
    for idx in minibatches(len(seq), cfg.num_minibatches):
        mb = seq.select(idx)
        seen += mb.advantages[mb.valid > 0].tolist()
        # each minibatch's rows are whole sequences: consecutive steps of one env
        assert ((mb.advantages[:, 1:] - mb.advantages[:, :-1]) == 4).all()
    want = ids[r.valid > 0].tolist()
    assert sorted(seen) == sorted(want) and len(seen) == len(set(seen))
    sizes = [len(i) for i in minibatches(10, 3)]
    assert sorted(sizes) == [3, 3, 4]
    envs.close()


def test_config_checks_for_ppo():
    with pytest.raises(ConfigError, match="bptt: 7 must divide rollout_steps"):
        resolve(None, ["bptt=7"], algo="ppo")
    with pytest.raises(ConfigError, match="num_minibatches: 999 is more than"):
        resolve(None, ["num_minibatches=999"], algo="ppo")
    with pytest.raises(ConfigError, match="clip_coef: must be a finite number"):
        resolve(None, ["clip_coef=.inf"], algo="ppo")
    with pytest.raises(ConfigError, match=r"bptt_context: 12 must be a multiple of the "
                                          r"gradient window \(8: bptt"):
        resolve(None, ["rollout_steps=32", "bptt=8", "bptt_context=12"], algo="ppo")
    with pytest.raises(ConfigError, match=r"bptt_context: 64 .* at most rollout_steps \(32\)"):
        resolve(None, ["rollout_steps=32", "bptt_context=64"], algo="ppo")
    with pytest.raises(ConfigError, match="this config is for 'a2c'"):
        train(resolve(None, []))


def test_ppo_learns_the_short_tmaze(tmp_path):
    cfg = resolve(None, ["core=lstm", "core_config.hidden_size=32", "env_kwargs.length=4",
                         "env_kwargs.bump_penalty=0.1", "threads=1", "num_envs=8",
                         "rollout_steps=32", "update_epochs=4", "num_minibatches=2",
                         "stop_at_success=0.95", "total_steps=200000",
                         f"run_dir={tmp_path}"], algo="ppo")
    result = train(cfg, progress=False)
    assert result["success"] >= 0.95, result
    from training.evaluate import evaluate
    assert evaluate(result["checkpoint"], episodes=50)["success_rate"] >= 0.9


def test_compile_auto_compiles_a_long_dnc_run_and_says_so(tmp_path, monkeypatch, capfd):
    """The trainer's default ``compile: auto`` on a run counted as long (the thresholds
    lowered for the test, and 2 replay steps per graph): the DNC's step and its replay's
    chunks go through torch.compile and the run says so; the same run with
    ``compile=false`` says nothing and gives the same figures up to rounding."""
    from training import config
    monkeypatch.setattr(config, "COMPILE_MIN_STEPS", 64)
    monkeypatch.setattr(config, "CHUNK_MIN_STEPS", 64)
    monkeypatch.setattr(config, "COMPILE_CHUNK", 2)
    base = ["core=dnc", ("core_config={hidden_size: 16, memory_slots: 8, word_size: 8, "
                         "read_heads: 1}"), "num_envs=4", "rollout_steps=16", "total_steps=128",
            "update_epochs=1", "num_minibatches=1", "threads=1", "stop_at_success=0",
            "checkpoint_every=100000000"]
    from torch._dynamo.utils import counters  # graphs torch.compile captured
    results, graphs = {}, {}
    for mode in ("auto", "false"):
        cfg = resolve(None, base + [f"compile={mode}", f"run_dir={tmp_path / mode}"],
                      algo="ppo")
        counters.clear()
        # "auto" sets torch's suppress_errors for the rest of the process: torch's own
        # patch puts it back after (pytest's monkeypatch left the config without the key)
        with torch._dynamo.config.patch(suppress_errors=False):
            results[mode] = train(cfg, progress=False)
        graphs[mode] = counters["stats"]["unique_graphs"]
        err = capfd.readouterr().err
        said = ("compile: auto, on for the dnc core on the CPU (total_steps >= 64); "
                "compile_chunk: auto, 2 steps per graph (total_steps >= 64)") in err
        assert said == (mode == "auto"), err
    assert graphs["auto"] > 0 and graphs["false"] == 0, graphs
    assert results["auto"]["global_step"] == results["false"]["global_step"] == 128
    np.testing.assert_allclose(results["auto"]["param_checksum"],
                               results["false"]["param_checksum"], rtol=1e-4)


def test_the_trainer_hands_each_rollout_the_last_steps_of_the_one_before(tmp_path):
    """bptt_context: the runner gives the first rollout an inert context and every later
    one the previous rollout's last steps, with their stored window-start states; PPO
    updates on the longer sequences."""
    from training.ppo import ppo_update
    from training.runner import train as run

    seen = []

    def update(learner, r):
        seen.append((r.context, r.obs.clone(), r.resets.clone(),
                     tuple(s.clone() for s in r.start_states)))
        return ppo_update(learner, r)

    cfg = resolve(None, ["env_kwargs.length=6", "threads=1", "num_envs=2", "rollout_steps=16",
                         "bptt=8", "bptt_context=8", "update_epochs=2", "num_minibatches=2",
                         "stop_at_success=0", "total_steps=96", f"run_dir={tmp_path}"],
                  algo="ppo")
    run(cfg, update, progress=False)
    assert len(seen) == 3
    first = seen[0][0]
    assert (first.obs == 0).all() and (first.resets == 1).all()
    for (_, obs, resets, starts), (ctx, *_) in zip(seen, seen[1:]):
        torch.testing.assert_close(ctx.obs, obs[8:], rtol=0, atol=0)
        torch.testing.assert_close(ctx.resets, resets[8:], rtol=0, atol=0)
        for a, b in zip(ctx.start_states, starts):
            torch.testing.assert_close(a, b[1:], rtol=0, atol=0)
