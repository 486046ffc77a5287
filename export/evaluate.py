"""Evaluate an exported policy through the robot runtime:
``python -m export.evaluate policy.onnx [--episodes 100] [--seed 0] [--env-kwargs K=V]``.

The env and its kwargs come from the file's contract; ``--env-kwargs key=value``
(repeatable, as in ``training.evaluate``) overrides some of those kwargs for the
evaluation (e.g. ``length=300``). Episode ``k`` is reset with seed ``seed + k`` exactly
as in ``training.evaluate``, so with the same seeds the two report the same results for
a checkpoint and its export (deterministic actions).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from dnc_policy.runtime import ContractError, PolicyRuntime

from training.evaluate import (
    EnvKwargsError,
    episode_args,
    format_result,
    resolve_env_kwargs,
    run_episodes,
)


def evaluate(onnx_path: str, episodes: int = 100, seed: int = 0, batch: int = 16,
             deterministic: bool = True, providers=None, env_kwargs: dict | None = None) -> dict:
    """Evaluate an exported policy; ``env_kwargs`` overrides keys of the contract's env
    kwargs (:func:`training.evaluate.resolve_env_kwargs`)."""
    batch = max(1, min(batch, episodes))  # the runtime's batch must equal run_episodes'
    rt = PolicyRuntime(onnx_path, providers=providers, batch=batch,
                       deterministic=deterministic, seed=seed)

    def act(obs: np.ndarray, reset: np.ndarray) -> np.ndarray:
        return rt.step(obs, reset)

    env = rt.contract["env"]
    kwargs = resolve_env_kwargs(env["id"], env["kwargs"], env_kwargs)
    result = run_episodes(act, env["id"], kwargs, episodes, seed, batch)
    result.update(env=env["id"], env_kwargs=kwargs, env_kwargs_override=dict(env_kwargs or {}),
                  model=str(onnx_path), deterministic=deterministic, providers=rt.providers)
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="policy.onnx written by export.onnx")
    a = episode_args(p, argv)
    try:
        r = evaluate(a.model, a.episodes, a.seed, a.batch, not a.sample,
                     env_kwargs=a.env_kwargs)
    except (ContractError, FileNotFoundError, EnvKwargsError) as e:
        p.exit(2, f"error: {e}\n")
    print(json.dumps(r) if a.json else format_result(r) + f"  [{', '.join(r['providers'])}]")
    return r


if __name__ == "__main__":
    main()
