"""Evaluate an exported policy through the robot runtime:
``python -m export.evaluate policy.onnx [--episodes 100] [--seed 0] [--env-kwargs K=V]``.

The env and its kwargs come from the file's contract; ``--env-kwargs key=value``
(repeatable, as in ``training.evaluate``) overrides some of those kwargs for the
evaluation (e.g. ``length=300``). Episode ``k`` is reset with seed ``seed + k`` exactly
as in ``training.evaluate``, so with the same seeds the two report the same results for
a checkpoint and its export (deterministic actions).

The options are checked as in ``training.evaluate`` (``--episodes`` 1 to 1,000,000,
``--seed`` 0 to 2**32 - 1, ``--batch`` 1 to 4096: argparse errors naming the flag). A
missing or unloadable model, a contract the runtime refuses, a contract whose env id is
not registered, whose env kwargs that env does not take or refuses, or whose env's
observations or actions are not the model's, is a one-line ``error:`` (exit status 2),
and so is a model that outputs NaN or Inf during the evaluation.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from dnc_policy.runtime import ContractError, NonFiniteOutput, PolicyRuntime

from training.envs import make_env
from training.evaluate import (
    EnvIdError,
    EnvKwargsError,
    check_env_id,
    episode_args,
    format_result,
    resolve_env_kwargs,
    run_episodes,
)
from training.spaces import ObsFlattener, describe_space


def evaluate(onnx_path: str, episodes: int = 100, seed: int = 0, batch: int = 16,
             deterministic: bool = True, providers=None, env_kwargs: dict | None = None) -> dict:
    """Evaluate an exported policy; ``env_kwargs`` overrides keys of the contract's env
    kwargs (:func:`training.evaluate.resolve_env_kwargs`)."""
    batch = max(1, min(batch, episodes))  # the runtime's batch must equal run_episodes'
    try:
        rt = PolicyRuntime(onnx_path, providers=providers, batch=batch,
                           deterministic=deterministic, seed=seed)
    except ContractError as e:  # name the file (a contract's own messages do not)
        if str(onnx_path) in str(e):
            raise
        raise ContractError(f"{str(onnx_path)!r}: {e}") from None

    def act(obs: np.ndarray, reset: np.ndarray) -> np.ndarray:
        return rt.step(obs, reset)

    env = rt.contract["env"]
    if not isinstance(env, dict) or "id" not in env or \
            not isinstance(env.get("kwargs") or {}, dict):
        raise ContractError(f"{str(onnx_path)!r}: the contract's env entry {env!r} is not "
                            "{id, kwargs}")
    check_env_id(env["id"], f"{str(onnx_path)!r}: its contract names")
    kwargs = resolve_env_kwargs(env["id"], env.get("kwargs") or {}, env_kwargs,
                                f"{str(onnx_path)!r}: its contract's env.kwargs")
    check_env_fits(rt, env["id"], kwargs, str(onnx_path))
    try:
        result = run_episodes(act, env["id"], kwargs, episodes, seed, batch)
    except NonFiniteOutput as e:
        raise NonFiniteOutput(f"{str(onnx_path)!r} during the evaluation: {e}") from None
    result.update(env=env["id"], env_kwargs=kwargs, env_kwargs_override=dict(env_kwargs or {}),
                  model=str(onnx_path), deterministic=deterministic, providers=rt.providers)
    return result


def check_env_fits(rt: PolicyRuntime, env_id: str, kwargs: dict, model: str) -> None:
    """Raise :class:`ContractError` (one line) unless ``env_id`` with ``kwargs`` gives the
    observations the model reads (``obs_dim``) and takes the actions it writes (the
    contract's ``action_space``, where it has one)."""
    try:
        env = make_env(env_id, kwargs, f"{model!r}: env {env_id}")
    except ValueError as e:
        raise ContractError(str(e)) from None
    try:
        obs_dim = ObsFlattener(env.observation_space).dim
        action = json.loads(json.dumps(describe_space(env.action_space)))
    except ValueError as e:  # a space this project does not describe
        raise ContractError(f"{model!r}: env {env_id}: {e}") from None
    finally:
        env.close()
    if obs_dim != rt.obs_dim:
        raise ContractError(f"{model!r}: env {env_id} with {_short(kwargs)} gives "
                            f"observations of {obs_dim} values, the model reads "
                            f"{rt.obs_dim} (contract field 'obs_dim')")
    want = rt.contract.get("action_space")
    if isinstance(want, dict) and want != action:
        raise ContractError(f"{model!r}: env {env_id} with {_short(kwargs)} takes the "
                            f"actions {_short(action)}, the model writes {_short(want)} "
                            "(contract field 'action_space')")


def _short(value, limit: int = 100) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="policy.onnx written by export.onnx")
    a = episode_args(p, argv)
    try:
        r = evaluate(a.model, a.episodes, a.seed, a.batch, not a.sample,
                     env_kwargs=a.env_kwargs)
    except (ContractError, FileNotFoundError, EnvKwargsError, EnvIdError,
            NonFiniteOutput) as e:
        p.exit(2, f"error: {e}\n")
    print(json.dumps(r) if a.json else format_result(r) + f"  [{', '.join(r['providers'])}]")
    return r


if __name__ == "__main__":
    main()
