"""Evaluate a checkpoint: ``python -m training.evaluate CKPT [--episodes 100] [--seed 0]``.

Episode ``k`` runs in a fresh ``gymnasium.make(env, **env_kwargs)`` reset with seed
``seed + k``; actions are deterministic (the distribution's mode) unless ``--sample``.
Episodes run ``--batch`` at a time, one batch row each, with the memory carried across
steps and reset at each episode's first step, so the figures do not depend on the batch
size. ``export.evaluate`` uses the same episode-to-seed rule for ONNX policies.

``--env-kwargs key=value`` (repeatable; the value is read as JSON, else kept as a
string) overrides the checkpoint's stored env kwargs for the evaluation, to test a
policy beyond what it was trained on: ``--env-kwargs length=300``,
``--env-kwargs 'length=[5,30]'``, ``--env-kwargs bump_penalty=0.1``. A key the env does
not take, or a value it refuses, is a one-line error (exit status 2).

The numeric options are checked before anything is loaded: ``--episodes`` 1 to
1,000,000, ``--seed`` 0 to 2**32 - 1 (and ``seed + episodes - 1`` too, the last
episode's seed), ``--batch`` 1 to 4096; anything else is an argparse error naming the flag
(exit status 2). A checkpoint that cannot be loaded, whose env id is not registered, or
whose stored env kwargs the env does not take or refuses (``length: -1``), is a one-line
``error:`` (exit status 2).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable

import gymnasium as gym
import numpy as np
import torch

import sim  # noqa: F401  (registers the dnc/ envs)
from training.checkpoint import CheckpointError, load_policy
from training.envs import check_env_kwargs, env_spec, make_env
from training.spaces import ObsFlattener, to_env_actions

MAX_EPISODES = 1_000_000
MAX_BATCH = 4096  # the exported graph's batch axis goes up to 4096 too
SEED_MAX = 2**32 - 1


def bounded_int(low: int, high: int):
    """An argparse ``type``: an integer from ``low`` to ``high`` (inclusive); anything else
    is an argparse error naming the flag ("argument --seed: must be an integer from 0 to
    4294967295, got '-1'")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be an integer from {low:,} to {high:,}, got {text!r}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


class EnvIdError(ValueError):
    """An env id (a checkpoint's or a contract's) that gymnasium does not know. The
    message is one line and lists the registered ``dnc/`` ids."""


def check_env_id(env_id, what: str) -> None:
    """Raise :class:`EnvIdError` ("<what> env 'x', which is not registered; registered
    dnc/ envs: ...") unless ``gymnasium.make(env_id)`` can find the id."""
    try:
        env_spec(env_id)
        return
    except (gym.error.Error, TypeError):  # NameNotFound, VersionNotFound...; not a string
        pass
    known = sorted(k for k in gym.registry if k.startswith("dnc/"))
    raise EnvIdError(f"{what} env {env_id!r}, which is not registered; registered dnc/ envs: "
                     f"{', '.join(known) or 'none'}")


def run_episodes(act, env_id: str, env_kwargs: dict, episodes: int, seed: int = 0,
                 batch: int = 16) -> dict:
    """Run ``episodes`` episodes with ``act(obs [B, D] float32, reset [B] float32) ->
    env-ready actions [B, ...]`` (a stateful callable that carries its own memory).

    Returns per-episode ``returns``, ``lengths``, ``successes`` (None where the env gives
    no ``is_success``) in episode order, and their summary.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")
    batch = max(1, min(batch, episodes))
    envs = [gym.make(env_id, **env_kwargs) for _ in range(batch)]
    flatten = ObsFlattener(envs[0].observation_space)
    action_space = envs[0].action_space
    next_episode = 0
    current = [-1] * batch  # episode index each row is running (-1: idle)
    obs = np.zeros((batch, flatten.dim), np.float32)
    reset = np.zeros(batch, np.float32)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, np.int64)
    successes: list = [None] * episodes
    trials: list = [None] * episodes  # info["trial_steps"] at the end (ProceduralMaze)

    def start(row: int) -> None:
        nonlocal next_episode
        if next_episode >= episodes:
            current[row] = -1
            return
        current[row] = next_episode
        o, _ = envs[row].reset(seed=seed + next_episode)
        obs[row] = flatten(np.asarray(o)[None])[0]
        reset[row] = 1.0
        next_episode += 1

    for row in range(batch):
        start(row)
    while any(c >= 0 for c in current):
        actions = to_env_actions(np.asarray(act(obs.copy(), reset.copy())), action_space)
        reset[:] = 0.0
        for row in range(batch):
            k = current[row]
            if k < 0:
                continue
            o, r, terminated, truncated, info = envs[row].step(actions[row])
            returns[k] += r
            lengths[k] += 1
            obs[row] = flatten(np.asarray(o)[None])[0]
            if terminated or truncated:
                if "is_success" in info:
                    successes[k] = bool(info["is_success"])
                if "trial_steps" in info:
                    trials[k] = [int(t) for t in info["trial_steps"]]
                start(row)
    for env in envs:
        env.close()
    known = [s for s in successes if s is not None]
    return {"episodes": episodes, "seed": seed,
            "success_rate": float(np.mean(known)) if known else None,
            "return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "length_mean": float(lengths.mean()),
            "returns": returns.tolist(), "lengths": lengths.tolist(), "successes": successes,
            **({"trial_steps": trials, "adaptation": adaptation_summary(trials)}
               if any(t is not None for t in trials) else {})}


def adaptation_summary(trials: list[list[int] | None]) -> dict:
    """Fast adaptation within an episode (RL²'s measure), from each episode's steps per
    finished trial (``info["trial_steps"]``; None where the env gave none).

    Over the episodes that finished at least two trials: the mean steps of trial 1, the
    mean steps of trials 2 and later (each episode's mean of them, then the mean over
    episodes), their ratio (later / first: below 1 means later trials are shorter), and
    the fraction of those episodes whose later trials took fewer steps on average than
    their first. ``episodes`` counts them; an episode cut off before its second goal has
    no later trial to compare and is left out (``finished_one_or_none`` counts those).
    ``per_trial_steps_mean[k]``: the mean steps of trial k + 1 over those episodes that
    finished it."""
    known = [t for t in trials if t is not None]
    used = [t for t in known if len(t) >= 2]
    out = {"episodes": len(used), "finished_one_or_none": len(known) - len(used),
           "trial1_steps_mean": None, "later_steps_mean": None, "later_over_first": None,
           "later_shorter_fraction": None, "per_trial_steps_mean": []}
    if used:
        first = np.array([t[0] for t in used], float)
        later = np.array([np.mean(t[1:]) for t in used])
        out.update(trial1_steps_mean=float(first.mean()), later_steps_mean=float(later.mean()),
                   later_over_first=float(later.mean() / first.mean()),
                   later_shorter_fraction=float(np.mean(later < first)),
                   per_trial_steps_mean=[float(np.mean([t[k] for t in used if len(t) > k]))
                                         for k in range(max(map(len, used)))])
    return out


class EnvKwargsError(ValueError):
    """An ``--env-kwargs`` item is malformed, names a key the env does not take, or gives
    a value the env refuses. The message is one line, fit for the command line."""


def parse_env_kwargs(items: Iterable[str] | None, env_id: str | None = None) -> dict:
    """``["key=value", ...]`` -> ``{key: value}``; each value is parsed as JSON
    (``300``, ``[5, 30]``, ``0.1``, ``true``, ``null``) or, when that fails, kept as the
    plain string (``respawn=random``). A later item overrides an earlier one with the
    same key. With ``env_id``, every key must be a keyword argument of that env.

    Raises :class:`EnvKwargsError` (a ``ValueError``) with a one-line message.
    """
    out: dict = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise EnvKwargsError(f"--env-kwargs expects key=value (e.g. length=300), "
                                 f"got {item!r}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    if env_id is not None:
        _check_keys(env_id, out)
    return out


def _check_keys(env_id: str, keys: Iterable[str]) -> None:
    try:
        check_env_kwargs(env_id, keys, "--env-kwargs")
    except ValueError as e:
        raise EnvKwargsError(str(e)) from None


def resolve_env_kwargs(env_id: str, stored: dict, overrides: dict | None,
                       source: str = "the stored env kwargs") -> dict:
    """The kwargs an evaluation runs with: ``stored`` (the checkpoint's or the contract's,
    described by ``source`` in messages) updated by ``overrides``. The keys are checked
    against the env and one env is built with the result, so a key the env does not
    take or a value it refuses is an :class:`EnvKwargsError` (one line; the env's own
    message for a value) before any episode runs: it names ``--env-kwargs`` when
    overrides were given, else ``source``."""
    merged = {**stored, **(overrides or {})}
    if overrides:
        _check_keys(env_id, overrides)
    try:
        check_env_kwargs(env_id, stored, source)
    except ValueError as e:
        raise EnvKwargsError(str(e)) from None
    if overrides:
        given = " ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())
        what = f"--env-kwargs {given}"
    else:
        what = f"{source} {json.dumps(stored, default=str)}"
    try:
        make_env(env_id, merged, what).close()
    except ValueError as e:
        raise EnvKwargsError(str(e)) from None
    return merged


class TorchActor:
    """A PyTorch policy ticked like the robot runtime: ``actor(obs [B, obs_dim] float32,
    reset [B] float32)`` -> env actions ``[B, ...]``, the memory carried in ``state``
    and the tick's heads kept in ``out`` (a PolicyOutput). The one PyTorch tick loop of
    evaluation (here), the memory pictures (training.visualize) and the export's parity
    check (export.parity.check_parity)."""

    def __init__(self, policy, batch: int, deterministic: bool = True):
        self.policy, self.deterministic = policy, deterministic
        self.state = policy.initial_state(batch)
        self.out = None

    @torch.no_grad()
    def __call__(self, obs: np.ndarray, reset: np.ndarray) -> np.ndarray:
        self.out, self.state = self.policy(torch.from_numpy(obs), self.state,
                                           torch.from_numpy(reset))
        dist = self.policy.distribution(self.out)
        action = dist.mode() if self.deterministic else dist.sample()
        return self.policy.env_action(action).numpy()


def evaluate(checkpoint: str, episodes: int = 100, seed: int = 0, batch: int = 16,
             deterministic: bool = True, env_kwargs: dict | None = None) -> dict:
    """Evaluate a checkpoint; ``env_kwargs`` overrides keys of its stored env kwargs
    (:func:`resolve_env_kwargs`; :class:`EnvKwargsError` for a bad key or value)."""
    policy, ckpt = load_policy(checkpoint)
    check_env_id(ckpt["env"], f"checkpoint {str(checkpoint)!r} was trained on")
    kwargs = resolve_env_kwargs(ckpt["env"], ckpt["env_kwargs"], env_kwargs,
                                f"checkpoint {str(checkpoint)!r}: its env_kwargs")
    torch.manual_seed(seed)  # sampled actions (--sample) are reproducible too
    batch = max(1, min(batch, episodes))  # the actor's batch must equal run_episodes'
    result = run_episodes(TorchActor(policy, batch, deterministic), ckpt["env"], kwargs,
                          episodes, seed, batch)
    result.update(env=ckpt["env"], env_kwargs=kwargs, env_kwargs_override=dict(env_kwargs or {}),
                  checkpoint=str(checkpoint), deterministic=deterministic)
    return result


def format_result(r: dict) -> str:
    success = "n/a (env reports none)" if r["success_rate"] is None else f"{r['success_rate']:.3f}"
    mode = "deterministic" if r.get("deterministic", True) else "sampled"
    kwargs = ", ".join(f"{k}={json.dumps(v)}" for k, v in r.get("env_kwargs", {}).items())
    override = r.get("env_kwargs_override")
    if override:
        kwargs += f"; overridden: {', '.join(override)}"
    seeds = f"{r['seed']}..{r['seed'] + r['episodes'] - 1}"
    line = (f"{r['env']}({kwargs}): {r['episodes']} episodes (seeds {seeds}, "
            f"{mode}): success {success}, return {r['return_mean']:.3f} ± {r['return_std']:.3f}, "
            f"length {r['length_mean']:.1f}")
    ad = r.get("adaptation")
    if ad is not None:
        if ad["episodes"]:
            line += (f"; trials: {ad['trial1_steps_mean']:.1f} steps to the goal in trial 1, "
                     f"{ad['later_steps_mean']:.1f} in later trials (x{ad['later_over_first']:.2f}), "
                     f"later shorter in {ad['later_shorter_fraction']:.0%} of the "
                     f"{ad['episodes']} episodes with 2+ trials done")
        else:
            line += "; trials: no episode finished 2 trials"
    return line


def episode_args(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """The options every evaluation CLI shares (this one and ``export.evaluate``),
    parsed and checked."""
    p.add_argument("--episodes", type=bounded_int(1, MAX_EPISODES), default=100,
                   help=f"number of episodes, 1 to {MAX_EPISODES:,} (default 100)")
    p.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=0,
                   help="episode k is reset with seed + k; 0 to 2**32 - 1 (default 0)")
    p.add_argument("--batch", type=bounded_int(1, MAX_BATCH), default=16,
                   help=f"episodes run side by side, 1 to {MAX_BATCH} (default 16)")
    p.add_argument("--sample", action="store_true", help="sample actions (default: mode)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--env-kwargs", action="append", default=[], metavar="KEY=VALUE",
                   help="override one of the stored env kwargs for this evaluation "
                        "(repeatable; VALUE is JSON, else a string), e.g. length=300 or "
                        "'length=[5,30]'")
    a = p.parse_args(argv)
    if a.seed + a.episodes - 1 > SEED_MAX:
        p.error(f"argument --seed: the last episode's seed (--seed + --episodes - 1 = "
                f"{a.seed + a.episodes - 1}) must be at most 2**32 - 1")
    try:  # the format now; keys and values once the env id is known (resolve_env_kwargs)
        a.env_kwargs = parse_env_kwargs(a.env_kwargs)
    except EnvKwargsError as e:
        p.exit(2, f"error: {e}\n")
    return a


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="checkpoint file or run folder")
    a = episode_args(p, argv)
    torch.set_num_threads(2)
    try:
        r = evaluate(a.checkpoint, a.episodes, a.seed, a.batch, not a.sample, a.env_kwargs)
    except (CheckpointError, EnvKwargsError, EnvIdError) as e:
        p.exit(2, f"error: {e}\n")
    print(json.dumps(r) if a.json else format_result(r))
    return r


if __name__ == "__main__":
    main()
