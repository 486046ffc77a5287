"""Checkpoints: written atomically, loaded with ``weights_only=True``, validated.

A checkpoint is a dict of plain data and tensors holding everything export needs (policy
config with core config and action spec, state dict with the observation normaliser,
env id and kwargs, observation and action spaces, versions) and everything ``--resume``
needs (optimiser state, update and step counters, RNG state, the resolved config).
"""

from __future__ import annotations

import pickle
import platform
import zipfile
from pathlib import Path
from typing import Any

import torch
from dnc_policy.files import atomic_write

FORMAT = "dnc-policy/checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "policy_config", "policy_state", "env", "env_kwargs",
            "observation_space", "action_space", "global_step", "config", "versions")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, truncated or not one of ours."""


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import gymnasium
    import numpy
    try:
        ours = version("dnc-policy")
    except PackageNotFoundError:
        ours = "unknown"
    # str(): torch.__version__ is a TorchVersion, which weights_only loading refuses.
    return {"dnc_policy": ours, "torch": str(torch.__version__),
            "gymnasium": str(gymnasium.__version__), "numpy": str(numpy.__version__),
            "python": platform.python_version()}


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` written atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def resolve_path(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its ``checkpoints/latest.pt``)."""
    p = Path(path)
    if p.is_dir():
        latest = p / "checkpoints" / "latest.pt"
        if latest.is_file():
            return latest
        raise CheckpointError(f"run folder {str(p)!r} has no checkpoints/latest.pt")
    if not p.exists():
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist")
    return p


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate a checkpoint (file or run folder); clear errors on anything else."""
    p = resolve_path(path)
    if not zipfile.is_zipfile(p):
        raise CheckpointError(f"checkpoint {str(p)!r} could not be read (truncated, corrupt "
                              "or not a torch file): it is not a complete torch zip archive")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"checkpoint {str(p)!r} is not a dnc-policy checkpoint: it is "
                              "not a torch file, or it holds objects other than tensors and "
                              "plain data, which are never loaded (weights_only=True)") from None
    except Exception as e:  # truncated or corrupt zip, empty file...
        raise CheckpointError(f"checkpoint {str(p)!r} could not be read (truncated or "
                              f"corrupt): {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(p)!r} is not a dnc-policy checkpoint (no "
                              f"format={FORMAT!r} entry)")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {str(p)!r} has format version "
                              f"{ckpt.get('version')!r}; this code reads version {VERSION}")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {str(p)!r} lacks {missing}")
    return ckpt


def load_policy(path: str | Path, map_location: str | torch.device = "cpu"):
    """``(policy, checkpoint)``: the :class:`ActorCritic` rebuilt from a checkpoint."""
    from dnc_core import ActorCritic

    ckpt = load(path, map_location)
    policy = ActorCritic.from_config(ckpt["policy_config"])
    try:
        policy.load_state_dict(ckpt["policy_state"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {str(path)!r}: weights do not fit its policy "
                              f"config: {str(e).splitlines()[0]}") from None
    return policy.to(map_location).eval(), ckpt
