"""Checkpoints: written atomically, loaded with ``weights_only=True``, validated.

A checkpoint is a dict of plain data and tensors holding everything export needs (policy
config with core config and action spec, state dict with the observation normaliser,
env id and kwargs, observation and action spaces, versions) and everything ``--resume``
needs (optimiser state, update and step counters, RNG state, the resolved config, the
episode count and rolling episode figures).

Two guarantees the trainer relies on: a file that :func:`load` accepts can be rebuilt
into a policy (its contents are checked, not only its format), and no checkpoint holds
a NaN or an infinity (:func:`check_finite` refuses them before anything is written).
"""

from __future__ import annotations

import math
import pickle
import platform
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from dnc_policy.files import atomic_write

FORMAT = "dnc-policy/checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "policy_config", "policy_state", "env", "env_kwargs",
            "observation_space", "action_space", "global_step", "config", "versions")
POLICY_CONFIG = {"core": str, "core_config": dict, "obs_dim": int, "action": dict,
                 "normalize_obs": bool, "head_hidden": int}
STEP_FILE = re.compile(r"step_(\d+)\.pt")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, truncated, not one of ours, or holds
    contents that do not make a policy (the message says which)."""


class NonFiniteError(RuntimeError):
    """Training diverged: a parameter or the optimiser state holds a NaN or an
    infinity. Nothing is saved; the last good checkpoint is left as it was."""


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import gymnasium
    import numpy
    try:
        ours = version("dnc-policy-workstation")
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
    problem = contents_problem(ckpt)
    if problem:
        raise CheckpointError(f"checkpoint {str(p)!r} is broken: {problem}")
    return ckpt


def contents_problem(ckpt: dict) -> str | None:
    """What is wrong with a checkpoint's contents (None when nothing is): the policy
    config's keys and types, the state dict's entries, the env id's type, the step
    counter, and finiteness of every weight."""
    from dnc_core import CORES

    pc = ckpt["policy_config"]
    if not isinstance(pc, dict):
        return f"policy_config is a {type(pc).__name__}, expected a dict"
    for key, want in POLICY_CONFIG.items():
        if key not in pc:
            return f"policy_config lacks {key!r}"
        value = pc[key]
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            return f"policy_config.{key} is {type(value).__name__} {value!r}, expected {want.__name__}"
    if pc["core"] not in CORES:
        return f"policy_config.core {pc['core']!r} is not one of {sorted(CORES)}"
    critic = pc.get("critic_core")  # optional: a separate critic core
    if critic is not None:
        if (not isinstance(critic, dict) or set(critic) != {"kind", "config"}
                or not isinstance(critic["config"], dict)):
            return (f"policy_config.critic_core is {critic!r}, expected None or a dict "
                    "{'kind': core name, 'config': dict}")
        if critic["kind"] not in CORES:
            return (f"policy_config.critic_core.kind {critic['kind']!r} is not one of "
                    f"{sorted(CORES)}")
    layers = pc.get("head_layers", 1)  # optional: absent means 1
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        return f"policy_config.head_layers is {layers!r}, expected an integer >= 1"
    if pc["obs_dim"] < 1:
        return f"policy_config.obs_dim must be >= 1, got {pc['obs_dim']}"
    if "obs_dim" in ckpt and ckpt["obs_dim"] != pc["obs_dim"]:
        return f"obs_dim {ckpt['obs_dim']!r} differs from policy_config.obs_dim {pc['obs_dim']}"
    state = ckpt["policy_state"]
    if not isinstance(state, dict):
        return f"policy_state is a {type(state).__name__}, expected a dict of tensors"
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            return f"policy_state[{name!r}] is a {type(t).__name__}, expected a tensor"
    bad = first_non_finite(state)
    if bad:
        return f"policy_state[{bad!r}] holds NaN or infinite values"
    if not isinstance(ckpt["env"], str) or not ckpt["env"]:
        return f"env is {ckpt['env']!r}, expected a Gymnasium env id"
    if not isinstance(ckpt["env_kwargs"], dict):
        return f"env_kwargs is a {type(ckpt['env_kwargs']).__name__}, expected a dict"
    step = ckpt["global_step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return f"global_step is {step!r}, expected an integer >= 0"
    if not isinstance(ckpt["config"], dict):
        return f"config is a {type(ckpt['config']).__name__}, expected a dict"
    return None


def state_mismatch(expected: dict, state: dict) -> str | None:
    """The first tensor of ``state`` that does not fit ``expected`` (a module's state
    dict): missing, unexpected, or of another shape; None when all fit."""
    for name, t in expected.items():
        if name not in state:
            return f"tensor {name!r} is missing"
        if tuple(state[name].shape) != tuple(t.shape):
            return (f"tensor {name!r} has shape {list(state[name].shape)}, the policy "
                    f"expects {list(t.shape)}")
    for name in state:
        if name not in expected:
            return f"tensor {name!r} is not part of the policy"
    return None


def load_policy(path: str | Path, map_location: str | torch.device = "cpu"):
    """``(policy, checkpoint)``: the :class:`ActorCritic` rebuilt from a checkpoint."""
    from dnc_core import ActorCritic

    ckpt = load(path, map_location)
    try:
        policy = ActorCritic.from_config(ckpt["policy_config"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r}: its policy_config does not build a "
                              f"policy: {_one_line(e)}") from None
    mismatch = state_mismatch(policy.state_dict(), ckpt["policy_state"])
    if mismatch:
        raise CheckpointError(f"checkpoint {str(path)!r}: weights do not fit its policy "
                              f"config: {mismatch}")
    policy.load_state_dict(ckpt["policy_state"])
    return policy.to(map_location).eval(), ckpt


# --------------------------------------------------------------------------------------
# Finiteness (never save a diverged model)
# --------------------------------------------------------------------------------------
def _tensors(obj: Any, prefix: str = ""):
    """``(name, tensor)`` for every floating tensor inside nested dicts and lists."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        yield prefix, torch.tensor(obj)


def first_non_finite(obj: Any) -> str | None:
    """The name of the first floating tensor (or float) in ``obj`` (a state dict, an
    optimiser state dict, nested dicts and lists) holding a NaN or an infinity; None
    when every one is finite. One device synchronisation when all are finite."""
    found = list(_tensors(obj))
    by_device: dict = {}
    for i, (_, t) in enumerate(found):
        by_device.setdefault(t.device, []).append(i)
    bad = []
    for idx in by_device.values():
        ok = torch.stack([torch.isfinite(found[i][1]).all() for i in idx]).cpu().tolist()
        bad += [i for i, good in zip(idx, ok) if not good]
    return found[min(bad)][0] if bad else None


def check_finite(policy: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                 when: str = "") -> None:
    """Raise :class:`NonFiniteError` naming the first weight, buffer or optimiser
    state that is not finite."""
    bad = first_non_finite(policy.state_dict())
    what = f"policy tensor {bad!r}" if bad else None
    if what is None and optimizer is not None:  # named by the parameter it belongs to
        state = {name: optimizer.state[p] for name, p in policy.named_parameters()
                 if p in optimizer.state}
        bad = first_non_finite(state)
        what = f"optimiser state {bad!r}" if bad else None
    if what:
        raise NonFiniteError(f"training diverged{when}: {what} holds NaN or infinite values")


# --------------------------------------------------------------------------------------
# Resume: which checkpoint, which run folder
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResumePoint:
    """Where ``--resume`` continues: the checkpoint file, its loaded contents, and the
    run folder it continues in (None for a checkpoint outside any run's
    ``checkpoints/`` folder: that starts a new run folder)."""

    path: Path
    checkpoint: dict
    run_dir: Path | None


def step_files(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of a run's ``checkpoints/step_<n>.pt`` files, newest first."""
    folder = Path(run_dir) / "checkpoints"
    found = [(int(m.group(1)), f) for f in folder.glob("step_*.pt")
             if (m := STEP_FILE.fullmatch(f.name))] if folder.is_dir() else []
    return sorted(found, key=lambda sf: sf[0], reverse=True)


def newest_checkpoint(run_dir: str | Path) -> tuple[Path, dict]:
    """The newest complete (loadable) checkpoint of a run folder and its contents:
    ``checkpoints/latest.pt``, unless a loadable ``step_<n>.pt`` holds a later step (a
    run killed between the two writes of a checkpoint)."""
    run = Path(run_dir)
    latest_path = run / "checkpoints" / "latest.pt"
    latest, latest_error = None, None
    if latest_path.is_file():
        try:
            latest = load(latest_path)
        except CheckpointError as e:
            latest_error = e
    floor = latest["global_step"] if latest else -1
    for step, path in step_files(run):
        if step <= floor:
            break
        try:
            ck = load(path)
        except CheckpointError:
            continue  # incomplete: an older one may still be complete
        if ck["global_step"] > floor:
            return path, ck
    if latest is not None:
        return latest_path, latest
    if latest_error is not None:
        raise latest_error
    raise CheckpointError(f"run folder {str(run)!r} has no checkpoints/latest.pt (nor any "
                          f"complete checkpoints/step_<n>.pt)")


def resume_point(path: str | Path) -> ResumePoint:
    """What ``--resume PATH`` continues. A run folder: its newest complete checkpoint,
    in that folder. A file in ``<run>/checkpoints/``: that checkpoint in ``<run>``,
    provided it is the run's newest (resuming an older one in place would rewind the
    run; copy it out to branch a new run). Any other file: that checkpoint, in a new
    run folder (``run_dir`` is None). The env it was trained on must be registered."""
    import gymnasium

    import sim  # noqa: F401  (registers the dnc/ envs)
    from training.envs import env_spec

    p = Path(path)
    if p.is_dir():
        file, ckpt = newest_checkpoint(p)
        run: Path | None = p
    else:
        ckpt, file = load(p), p
        run = p.parent.parent if p.parent.name == "checkpoints" else None
        if run is not None:
            newest, newer = newest_checkpoint(run)
            if newer["global_step"] > ckpt["global_step"]:
                raise CheckpointError(
                    f"checkpoint {str(p)!r} (step {ckpt['global_step']}) is older than its "
                    f"run's newest, {str(newest)!r} (step {newer['global_step']}): resuming it "
                    f"in {str(run)!r} would rewind that run; resume the run folder, or copy "
                    f"the checkpoint out of the run to start a new run from it")
    missing = [k for k in ("optimizer_state", "update", "torch_rng_state") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {str(file)!r} holds a policy but not the training "
                              f"state a resume needs: it lacks {missing}")
    problem = training_state_problem(ckpt)
    if problem:
        raise CheckpointError(f"checkpoint {str(file)!r} cannot be resumed: {problem}")
    try:
        env_spec(ckpt["env"])
    except gymnasium.error.Error:
        raise CheckpointError(f"checkpoint {str(file)!r} was trained on env {ckpt['env']!r}, "
                              f"which is not a registered Gymnasium id (import the package "
                              f"that registers it)") from None
    return ResumePoint(file, ckpt, run)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def training_state_problem(ckpt: dict) -> str | None:
    """What is wrong with the fields only ``--resume`` uses (None when nothing is): the
    update counter, the optimiser state's layout, the RNG states (tried on the generator,
    then the generator put back), the reward scaler's statistics and the episode
    figures. Whether the optimiser state fits the policy, and holds no NaN or infinity
    (named by the parameter it belongs to), is checked when it is loaded into the
    optimiser (:func:`training.runner.train`), still before anything is written."""
    update = ckpt["update"]
    if not _is_count(update):
        return f"update is {update!r}, expected an integer >= 0"
    opt = ckpt["optimizer_state"]
    if not isinstance(opt, dict):
        return f"optimizer_state is {_describe(opt)}, expected an optimiser state dict"
    if not isinstance(opt.get("state"), dict):
        return f"optimizer_state['state'] is {_describe(opt.get('state'))}, expected a dict"
    groups = opt.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        return (f"optimizer_state['param_groups'] is {_describe(groups)}, expected a list "
                f"of dicts")
    for pid, entry in opt["state"].items():
        if not isinstance(entry, dict):
            return f"optimizer_state['state'][{pid!r}] is {_describe(entry)}, expected a dict"
    bad = first_non_finite(groups)  # the state's tensors: when loaded, by parameter name
    if bad:
        return f"optimizer_state['param_groups']{bad} is NaN or infinite"
    rng = ckpt["torch_rng_state"]
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
        return f"torch_rng_state is {_describe(rng)}, expected a uint8 tensor"
    saved = torch.get_rng_state()
    try:
        torch.set_rng_state(rng.cpu())
    except (RuntimeError, TypeError, ValueError) as e:
        return f"torch_rng_state is not a CPU generator state: {_one_line(e)}"
    finally:
        torch.set_rng_state(saved)
    cuda = ckpt.get("cuda_rng_state")
    if cuda is not None:
        if not isinstance(cuda, torch.Tensor) or cuda.dtype != torch.uint8:
            return f"cuda_rng_state is {_describe(cuda)}, expected None or a uint8 tensor"
        if torch.cuda.is_available():
            saved = torch.cuda.get_rng_state()
            try:
                torch.cuda.set_rng_state(cuda.cpu())
            except (RuntimeError, TypeError, ValueError) as e:
                return f"cuda_rng_state is not a CUDA generator state: {_one_line(e)}"
            finally:
                torch.cuda.set_rng_state(saved)
    norm = ckpt.get("reward_norm")  # normalize_rewards' statistics (None: off, or older)
    if norm is not None:
        shapes = {"mean": (1,), "var": (1,), "count": ()}
        if not isinstance(norm, dict) or set(norm) != set(shapes):
            return f"reward_norm is {_describe(norm)}, expected None or a dict of mean, var, count"
        for name, shape in shapes.items():
            v = norm[name]
            if not (isinstance(v, torch.Tensor) and v.dtype == torch.float64
                    and tuple(v.shape) == shape and bool(torch.isfinite(v).all())
                    and bool((v >= 0).all() or name == "mean")):
                return (f"reward_norm[{name!r}] is {_describe(v)}, expected a finite float64 "
                        f"tensor of shape {list(shape)}" + ("" if name == "mean" else " >= 0"))
    episodes = ckpt.get("episodes")
    if episodes is None:  # older checkpoints: the figures start from 0 and empty
        return None
    if not isinstance(episodes, dict):
        return f"episodes is {_describe(episodes)}, expected a dict"
    if "count" in episodes and not _is_count(episodes["count"]):
        return f"episodes['count'] is {episodes['count']!r}, expected an integer >= 0"
    for name in ("returns", "lengths", "successes"):
        values = episodes.get(name, [])
        if not isinstance(values, list) or not all(_is_number(v) and not isinstance(v, bool)
                                                    for v in values):
            return f"episodes[{name!r}] is {_describe(values)}, expected a list of finite numbers"
    return None


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
