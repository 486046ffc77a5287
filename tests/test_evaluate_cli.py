"""``--env-kwargs``: evaluating a checkpoint or an exported policy at other task settings.

The checkpoint is built here, not by a trainer: a tiny LSTM policy whose actor always
says "turn left", so in the T-maze it bumps the corridor wall until the episode is
truncated at ``max_steps = 4 * (length + 1)``: 44 steps at the stored length 10, 32 at
length 7. Episode lengths therefore show which length an evaluation really ran.
"""

import json

import gymnasium
import numpy as np
import pytest
import torch

import sim  # noqa: F401
from dnc_core import ActionSpec, ActorCritic, make_core
from training import checkpoint as ckpt_io
from training.envs import env_kwarg_names
from training.evaluate import (
    EnvKwargsError,
    evaluate,
    main,
    parse_env_kwargs,
    resolve_env_kwargs,
)
from training.spaces import describe_space

ENV = "dnc/TMaze-v0"
STORED = {"length": 10, "bump_penalty": 0.1}
TMAZE_KWARGS = ("length", "cue_steps", "step_penalty", "bump_penalty", "wrong_reward",
                "max_steps", "render_mode", "goal_arm", "arena_marker")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint with the keys the trainers write (training/run_files.py save_checkpoint)."""
    torch.manual_seed(0)
    policy = ActorCritic(make_core("lstm", input_size=4, hidden_size=8), 4, ActionSpec.discrete(3))
    with torch.no_grad():
        for param in policy.actor.parameters():
            param.zero_()
        policy.actor.bias[1] = 1.0  # always LEFT: a wall bump in the corridor
    env = gymnasium.make(ENV, **STORED)
    data = {"format": ckpt_io.FORMAT, "version": ckpt_io.VERSION,
            "policy_config": policy.config(),
            "policy_state": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
            "env": ENV, "env_kwargs": dict(STORED),
            "observation_space": describe_space(env.observation_space),
            "action_space": describe_space(env.action_space), "obs_dim": 4,
            "global_step": 0, "update": 0, "config": {}, "versions": ckpt_io.versions()}
    return str(ckpt_io.atomic_save(data, tmp_path_factory.mktemp("ckpt") / "latest.pt"))


# ------------------------------------------------------------------- parse_env_kwargs
def test_values_are_json_else_plain_strings():
    got = parse_env_kwargs(["length=300", "ranges=[5,30]", "bump_penalty=0.1", "flag=true",
                            "max_steps=null", "respawn=random", 'quoted="7"', "expr=a=b",
                            "empty="])
    assert got == {"length": 300, "ranges": [5, 30], "bump_penalty": 0.1, "flag": True,
                   "max_steps": None, "respawn": "random", "quoted": "7", "expr": "a=b",
                   "empty": ""}
    assert isinstance(got["length"], int) and parse_env_kwargs(None) == parse_env_kwargs([]) == {}


def test_a_repeated_key_overrides_the_earlier_one():
    assert parse_env_kwargs(["length=5", "cue_steps=2", "length=[3, 9]"]) == {
        "length": [3, 9], "cue_steps": 2}


@pytest.mark.parametrize("item", ["length", "=7", " =7", ""])
def test_an_item_without_key_and_equals_sign_is_an_error(item):
    with pytest.raises(EnvKwargsError, match=r"--env-kwargs expects key=value .*got"):
        parse_env_kwargs([item])


def test_unknown_key_names_it_and_lists_the_accepted_ones():
    assert parse_env_kwargs(["length=7"], ENV) == {"length": 7}
    with pytest.raises(EnvKwargsError) as excinfo:
        parse_env_kwargs(["length=7", "lenght=7"], ENV)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message == (f"--env-kwargs: {ENV} has no keyword argument 'lenght' (did you mean "
                       f"'length'?); it accepts: {', '.join(TMAZE_KWARGS)}")
    assert isinstance(excinfo.value, ValueError)


def test_accepted_names_come_from_the_entry_point_signature():
    assert env_kwarg_names(ENV) == TMAZE_KWARGS
    assert env_kwarg_names("dnc/CartPolePO-v0") == ("max_steps", "render_mode")  # a factory
    assert "sutton_barto_reward" in env_kwarg_names("CartPole-v1")  # gymnasium's own
    assert "size" in env_kwarg_names("dnc/ProceduralMaze-v0")


def test_resolve_merges_and_checks_values_with_the_env():
    assert resolve_env_kwargs(ENV, STORED, None) == STORED
    assert resolve_env_kwargs(ENV, STORED, {"length": [5, 30]}) == {"length": [5, 30],
                                                                    "bump_penalty": 0.1}
    with pytest.raises(EnvKwargsError) as excinfo:
        resolve_env_kwargs(ENV, STORED, {"length": [30, 5]})
    assert str(excinfo.value) == ("--env-kwargs length=[30, 5]: length must be an integer in "
                                  "[1, 100000] or a range [lo, hi] of two such integers with "
                                  "lo <= hi, got [30, 5]")
    with pytest.raises(EnvKwargsError, match=r"cue_steps must be an integer in \[1, 3\]"):
        resolve_env_kwargs(ENV, {"cue_steps": 4}, {"length": 3})  # the merged set is checked


# ----------------------------------------------------------------- training.evaluate
def _main_json(capsys, *args):
    main([*args, "--json"])
    return json.loads(capsys.readouterr().out)


def test_override_changes_the_evaluated_length(checkpoint, capsys):
    base = _main_json(capsys, checkpoint, "--episodes", "5")
    assert base["lengths"] == [44] * 5 and base["env_kwargs"] == STORED
    assert base["env_kwargs_override"] == {}
    r = _main_json(capsys, checkpoint, "--episodes", "5", "--env-kwargs", "length=7")
    assert r["lengths"] == [32] * 5 and r["successes"] == [False] * 5
    assert r["env_kwargs"] == {"length": 7, "bump_penalty": 0.1}  # the rest as stored
    assert r["env_kwargs_override"] == {"length": 7}


def test_override_with_a_range_draws_the_length_per_episode(checkpoint, capsys):
    r = _main_json(capsys, checkpoint, "--episodes", "12", "--env-kwargs", "length=[2, 40]",
                   "--env-kwargs", "length=[3,6]")
    assert r["env_kwargs"]["length"] == [3, 6]
    assert set(r["lengths"]) <= {4 * (n + 1) for n in range(3, 7)} and len(set(r["lengths"])) > 1
    drawn = gymnasium.make(ENV, length=[3, 6])
    assert r["lengths"] == [4 * (drawn.reset(seed=k)[1]["length"] + 1) for k in range(12)]


def test_the_result_line_shows_the_kwargs_used(checkpoint, capsys):
    main([checkpoint, "--episodes", "2", "--env-kwargs", "length=7"])
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{ENV}(length=7, bump_penalty=0.1; overridden: length): 2 episodes")
    main([checkpoint, "--episodes", "2"])
    assert capsys.readouterr().out.startswith(f"{ENV}(length=10, bump_penalty=0.1): 2 episodes")


def test_evaluate_function_takes_the_override(checkpoint):
    assert evaluate(checkpoint, episodes=3, env_kwargs={"length": 7})["lengths"] == [32] * 3
    assert evaluate(checkpoint, episodes=3)["lengths"] == [44] * 3


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("lenght=7", (f"error: --env-kwargs: {ENV} has no keyword argument 'lenght' (did you "
                      f"mean 'length'?); it accepts: {', '.join(TMAZE_KWARGS)}")),
        ("length=[30,5]", ("error: --env-kwargs length=[30, 5]: length must be an integer in "
                           "[1, 100000] or a range [lo, hi] of two such integers with "
                           "lo <= hi, got [30, 5]")),
        ("length=seven", "error: --env-kwargs length=\"seven\": length must be an integer in"),
    ],
)
def test_bad_key_or_value_is_a_one_line_error_with_exit_status_2(checkpoint, capsys, item,
                                                                  expected):
    with pytest.raises(SystemExit) as excinfo:
        main([checkpoint, "--episodes", "2", "--env-kwargs", item])
    assert excinfo.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(expected)
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_a_malformed_item_fails_before_the_checkpoint_is_read(tmp_path, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main([str(tmp_path / "nothing.pt"), "--env-kwargs", "length"])
    assert excinfo.value.code == 2
    assert capsys.readouterr().err == ("error: --env-kwargs expects key=value (e.g. "
                                       "length=300), got 'length'\n")


# ------------------------------------------------------------------- export.evaluate
@pytest.fixture(scope="module")
def onnx_model(checkpoint, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from export.onnx import build_contract, export_policy, sha256_of

    policy, ckpt = ckpt_io.load_policy(checkpoint)
    out = tmp_path_factory.mktemp("onnx") / "policy.onnx"
    export_policy(policy, build_contract(policy, ckpt, sha256_of(checkpoint)), out)
    return str(out)


def test_export_evaluate_takes_the_same_override(onnx_model, checkpoint, capsys):
    from export import evaluate as onnx_evaluate

    onnx_evaluate.main([onnx_model, "--episodes", "5", "--env-kwargs", "length=7", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert r["lengths"] == [32] * 5 and r["env_kwargs"] == {"length": 7, "bump_penalty": 0.1}
    torch_r = _main_json(capsys, checkpoint, "--episodes", "5", "--env-kwargs", "length=7")
    for key in ("returns", "lengths", "successes", "env_kwargs"):
        assert r[key] == torch_r[key], key
    onnx_evaluate.main([onnx_model, "--episodes", "2", "--env-kwargs", "length=7"])
    assert "(length=7, bump_penalty=0.1; overridden: length)" in capsys.readouterr().out


def test_export_evaluate_unknown_key_is_exit_status_2(onnx_model, capsys):
    from export import evaluate as onnx_evaluate

    with pytest.raises(SystemExit) as excinfo:
        onnx_evaluate.main([onnx_model, "--env-kwargs", "foo=1"])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --env-kwargs: {ENV} has no keyword argument 'foo'; it "
                          "accepts: length,") and err.count("\n") == 1


def test_trials_of_procedural_maze_episodes_add_up_and_are_summarised():
    """A random walker on ProceduralMaze: each episode's steps per finished trial add up
    to its length when all trials were done (less when it was cut off), and the summary
    is computed over the episodes with two or more trials."""
    from training.evaluate import adaptation_summary, run_episodes

    rng = np.random.default_rng(0)

    def walk(obs, reset):
        return rng.integers(0, 4, len(obs))

    r = run_episodes(walk, "dnc/ProceduralMaze-v0",
                     {"size": 2, "n_trials": 3, "max_steps": 80}, 24, seed=0, batch=4)
    trials = r["trial_steps"]
    assert all(t is not None for t in trials)
    for t, n, ok in zip(trials, r["lengths"], r["successes"]):
        assert (len(t) == 3) is ok and all(s >= 1 for s in t)
        assert sum(t) == n if ok else sum(t) < n
    ad = r["adaptation"]
    used = [t for t in trials if len(t) >= 2]
    assert used and ad["episodes"] == len(used)
    assert ad["finished_one_or_none"] == 24 - len(used)
    assert ad["trial1_steps_mean"] == pytest.approx(np.mean([t[0] for t in used]))
    assert adaptation_summary(trials) == ad
    # By hand: later trials 4 and 3.5 steps against first trials 10 and 3.
    hand = adaptation_summary([[10, 4, 4], [3, 2, 5], [7], None, []])
    assert hand["episodes"] == 2 and hand["finished_one_or_none"] == 2
    assert hand["later_over_first"] == pytest.approx(3.75 / 6.5)
    assert hand["later_shorter_fraction"] == 0.5
    assert hand["per_trial_steps_mean"] == [6.5, 3.0, 4.5]
    # A T-maze reports no trials: no adaptation in its result.
    def forward(obs, reset):
        return np.zeros(len(obs), np.int64)

    assert "adaptation" not in run_episodes(forward, "dnc/TMaze-v0", {"length": 3}, 4)
