"""The files of a run folder and a resume's restore of them (for :mod:`training.runner`):
the folder itself (``<env>_<core>_s<seed>_<timestamp>``), ``config.yaml``, checkpoints
(weights, optimiser, episode windows, RNG streams: everything a resume continues from
exactly), ``metrics.csv`` and TensorBoard events, and what a killed run left behind
(temporary files, metrics rows after its last checkpoint)."""

from __future__ import annotations

import csv
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from dnc_policy.files import atomic_write
from tqdm import tqdm

from dnc_core import ActorCritic
from training import checkpoint as ckpt_io
from training.config import TrainConfig
from training.rollout import EpisodeTracker
from training.spaces import ObsFlattener, describe_space


def new_run_dir(cfg: TrainConfig) -> Path:
    """``<run_dir>/<env>_<core>_s<seed>_<timestamp>``, never an existing folder (runs
    started in the same second get a suffix)."""
    env = cfg.env.rpartition(":")[2].replace("/", "_")  # "module:Id" -> "Id" (no ':' in paths)
    return unique_folder(Path(cfg.run_dir) / f"{env}_{cfg.core}_s{cfg.seed}")


def unique_folder(prefix: Path) -> Path:
    """Create ``<prefix>_<timestamp>``, never an existing folder (folders made in the
    same second get a suffix ``-2``, ``-3`` ...)."""
    base = prefix.with_name(f"{prefix.name}_{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    path, k = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            k += 1
            path = base.with_name(f"{base.name}-{k}")


def load_training_state(point: ckpt_io.ResumePoint, policy: ActorCritic, optimizer) -> None:
    """The checkpoint's weights and optimiser state into ``policy`` and ``optimizer``;
    :class:`CheckpointError` naming the first tensor that does not fit."""
    ck = point.checkpoint
    mismatch = ckpt_io.state_mismatch(policy.state_dict(), ck["policy_state"])
    if mismatch:
        raise ckpt_io.CheckpointError(
            f"checkpoint {str(point.path)!r}: its weights do not fit the policy this config "
            f"builds: {mismatch}")
    policy.load_state_dict(ck["policy_state"])
    try:
        optimizer.load_state_dict(ck["optimizer_state"])
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError, IndexError) as e:
        raise ckpt_io.CheckpointError(
            f"checkpoint {str(point.path)!r}: its optimizer_state does not fit the policy: "
            f"{' '.join(str(e).split())}") from None
    for name, p in policy.named_parameters():  # Adam's moments have the parameter's shape
        for key, value in optimizer.state.get(p, {}).items():
            if key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") and (
                    not isinstance(value, torch.Tensor) or value.shape != p.shape):
                raise ckpt_io.CheckpointError(
                    f"checkpoint {str(point.path)!r}: its optimizer_state does not fit the "
                    f"policy: {name}.{key} is "
                    + (f"of shape {list(value.shape)}, the parameter's is {list(p.shape)}"
                       if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"))
    try:  # a diverged optimiser state is no "last good checkpoint" to continue from
        ckpt_io.check_finite(policy, optimizer)
    except ckpt_io.NonFiniteError as e:
        raise ckpt_io.CheckpointError(
            f"checkpoint {str(point.path)!r} cannot be resumed: "
            f"{str(e).split(': ', 1)[1]}") from None


def restore_episodes(tracker: EpisodeTracker, ckpt: dict) -> None:
    """The episode count and the rolling windows a checkpoint saved (none in older
    checkpoints: they start from 0 and empty)."""
    saved = ckpt.get("episodes") or {}
    tracker.episodes = int(saved.get("count", 0))
    for name in ("returns", "lengths", "successes"):
        getattr(tracker, name).extend(saved.get(name, []))


class RunLogger:
    """Rank 0's outputs: progress bar, TensorBoard events, metrics.csv, config.yaml."""

    COLUMNS = ["global_step", "episodes", "return", "success", "length", "fps",
               "policy_loss", "value_loss", "entropy", "grad_norm", "lr", "wall_s"]

    def __init__(self, run_dir: Path, cfg: TrainConfig, global_step: int, progress: bool,
                 resume_step: int | None = None, config_now: bool = True):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # a plain `pip install .`: metrics.csv is the whole log
            SummaryWriter = None
            print("training: TensorBoard is not installed (the 'train' extra: pip install "
                  "'.[train]'); logging to metrics.csv only", file=sys.stderr)
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:  # what a killed run left after its last checkpoint
            remove_temporaries(run_dir)
            truncate_metrics(run_dir / "metrics.csv", resume_step)
        if config_now:  # else the trainer writes it with its first checkpoint
            write_config(run_dir, cfg)
        self.cfg, self.start = cfg, time.perf_counter()
        # purge_step: TensorBoard hides the events a killed run wrote after its checkpoint.
        self.writer = None if SummaryWriter is None else SummaryWriter(
            str(run_dir), purge_step=None if resume_step is None else resume_step + 1)
        new_csv = not (run_dir / "metrics.csv").exists()
        self.csv_file = open(run_dir / "metrics.csv", "a", newline="")
        self.csv = csv.writer(self.csv_file)
        if new_csv:
            self.csv.writerow(self.COLUMNS)
        self.bar = tqdm(total=cfg.total_steps, initial=min(global_step, cfg.total_steps),
                        disable=not progress, unit="step", dynamic_ncols=True,
                        desc=f"{cfg.algo} {cfg.core} {cfg.env}")

    def update(self, global_step, update, tracker, success, fps, lr, parts, memory,
               force=False) -> None:
        ret = float(np.mean(tracker.returns)) if tracker.returns else float("nan")
        length = float(np.mean(tracker.lengths)) if tracker.lengths else float("nan")
        self.bar.update(max(0, min(global_step, self.cfg.total_steps) - self.bar.n))
        self.bar.set_postfix(fps=f"{fps:.0f}", ret=f"{ret:.2f}",
                             success=f"{success:.2f}" if success == success else "-")
        if not (force or update % self.cfg.log_every == 0):
            return
        scalars = {"charts/return": ret, "charts/success": success,
                   "charts/episode_length": length, "charts/fps": fps, "charts/lr": lr,
                   "charts/episodes": tracker.episodes, **parts, **memory}
        for k, v in scalars.items():
            if v == v and self.writer is not None:  # NaN until an episode has finished
                self.writer.add_scalar(k, v, global_step)
        self.csv.writerow([global_step, tracker.episodes, ret, success, length, round(fps),
                           parts["losses/policy"], parts["losses/value"],
                           parts["losses/entropy"], parts["losses/grad_norm"], lr,
                           round(time.perf_counter() - self.start, 4)])
        self.csv_file.flush()

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        self.csv_file.close()


def remove_temporaries(run_dir: Path) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp`` files that writes killed half-way left in a
    run folder and its ``checkpoints/`` (see :func:`dnc_policy.files.atomic_write`)."""
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            if tmp.is_file():
                tmp.unlink()
                removed.append(tmp)
    return removed


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the header and the rows of ``metrics.csv`` up to ``last_step`` (the resumed
    checkpoint's): rows a killed run logged after its last checkpoint are dropped, so
    the steps stay strictly increasing. A torn last row is dropped too."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, kept = rows[0], [rows[0]]
    for row in rows[1:]:
        try:
            step = int(row[0])
        except (ValueError, IndexError):
            continue
        if len(row) == len(header) and step <= last_step:
            kept.append(row)
    if len(kept) == len(rows):
        return

    def write(f):
        import io
        text = io.StringIO(newline="")
        csv.writer(text).writerows(kept)
        f.write(text.getvalue().encode())
    atomic_write(path, write)


def restore_rng(ckpt: dict, cfg: TrainConfig, rank: int, device: torch.device) -> None:
    """Rank 0 continues the saved random streams exactly (CPU, and CUDA where saved);
    other ranks, whose streams were not saved, get their own seed derived from the
    update count, so ranks never share sampling noise."""
    if rank == 0:  # checked by training.checkpoint.resume_point; CUDA's only here
        torch.set_rng_state(ckpt["torch_rng_state"].cpu())
        if device.type == "cuda" and ckpt.get("cuda_rng_state") is not None:
            try:
                torch.cuda.set_rng_state(ckpt["cuda_rng_state"].cpu(), device)
            except (RuntimeError, TypeError, ValueError) as e:
                raise ckpt_io.CheckpointError(
                    f"checkpoint's cuda_rng_state is not a CUDA generator state: "
                    f"{' '.join(str(e).split())}") from None
    else:
        torch.manual_seed(cfg.seed + rank + 7919 * ckpt["update"])


def save_checkpoint(cfg: TrainConfig, policy: ActorCritic, optimizer, run_dir: Path,
                    flatten: ObsFlattener, obs_space, action_space, global_step: int,
                    update: int, tracker: EpisodeTracker | None = None,
                    scaler=None) -> Path:
    """Atomically write ``checkpoints/step_<n>.pt``, then ``checkpoints/latest.pt``.
    Refuses (:class:`training.checkpoint.NonFiniteError`, nothing written) weights or an
    optimiser state holding a NaN or an infinity. ``scaler``: the run's
    :class:`~training.rollout.RewardScaler` (``normalize_rewards``), whose statistics a
    resume continues."""
    ckpt_io.check_finite(policy, optimizer, f" before the checkpoint at step {global_step}")
    episodes = {"count": tracker.episodes, "returns": list(tracker.returns),
                "lengths": list(tracker.lengths),
                "successes": list(tracker.successes)} if tracker else {}
    data = {"format": ckpt_io.FORMAT, "version": ckpt_io.VERSION,
            "policy_config": policy.config(),
            "policy_state": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
            "env": cfg.env, "env_kwargs": dict(cfg.env_kwargs),
            "observation_space": describe_space(obs_space),
            "action_space": describe_space(action_space), "obs_dim": flatten.dim,
            "global_step": global_step, "update": update, "config": cfg.to_dict(),
            "episodes": episodes,
            "reward_norm": ({k: v.detach().cpu() for k, v in scaler.stats.state_dict().items()}
                            if scaler is not None else None),
            "torch_rng_state": torch.get_rng_state(),
            "cuda_rng_state": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            "run_dir": str(run_dir),
            "versions": ckpt_io.versions()}
    folder = run_dir / "checkpoints"
    ckpt_io.atomic_save(data, folder / f"step_{global_step:010d}.pt")
    return ckpt_io.atomic_save(data, folder / "latest.pt")


def write_config(run_dir: Path, cfg: TrainConfig) -> Path:
    """``<run>/config.yaml``, the config of the run's newest checkpoint, atomically."""
    return atomic_write(run_dir / "config.yaml",
                        lambda f: f.write(_yaml_dump(cfg.to_dict()).encode()))


def _yaml_dump(data: dict) -> str:
    import yaml
    return yaml.safe_dump(data, sort_keys=False)
