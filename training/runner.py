"""The training loop both trainers share: set-up, rollouts, checkpoints, logs, resume.

``training.a2c`` and ``training.ppo`` each give :func:`train` their update (one function
from a collected rollout to a gradient step or several); everything around it is here
or in :mod:`training.run_files` (the run folder's files: config, checkpoints, metrics,
TensorBoard, and their restore on resume), so a run folder, a checkpoint, a resume or a
``torchrun`` launch behave the same for both, and a checkpoint from either exports and
deploys the same way.

The loop, per update (read with DESIGN.md §6 and training/rollout.py):

1. learning rate (and PPO's clip range) from the schedule, linear in env steps;
2. :func:`training.rollout.collect_rollout`: ``rollout_steps`` steps of ``num_envs``
   envs without a graph, from the carried state;
3. the trainer's update: GAE, replay of the stored sequences with gradients, loss,
   gradient-norm clipping, optimiser step(s);
4. observation normaliser updated with the rollout's observations (constant within a
   rollout, so the replay sees what collection saw), pooled across processes;
5. logs, checkpoints (atomic), early stop on the pooled rolling success.

Several processes (``torchrun``): each rank steps its own envs (seeded by rank), the
policy is wrapped in DistributedDataParallel (gloo on CPU, NCCL on GPU; set
``DNC_DIST_BACKEND=gloo`` to force gloo), gradients are averaged in backward, success
statistics and normaliser moments are all-reduced, and rank 0 alone logs and saves.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import sim  # noqa: F401  (registers the dnc/ envs)
from dnc_core import CORES, ActorCritic, make_core
from dnc_core.policy import NonFiniteDistribution
from training import checkpoint as ckpt_io
from training.config import (ConfigError, TrainConfig, compile_chunk, compile_enabled,
                             resolve)
from training.envs import env_spec, make_env
from training.rollout import (Context, EpisodeTracker, RewardScaler, Rollout, collect_rollout,
                              start_carry)
from training.run_files import (RunLogger, load_training_state, new_run_dir, restore_episodes,
                                restore_rng, save_checkpoint, write_config)
from training.spaces import ObsFlattener, action_spec


# --------------------------------------------------------------------------------------
# Set-up helpers
# --------------------------------------------------------------------------------------
def distributed(device: torch.device | None = None) -> tuple[int, int]:
    """``(rank, world_size)``; joins the process group when started by torchrun: NCCL
    for a CUDA ``device`` (unless ``DNC_DIST_BACKEND=gloo``), gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        dist.init_process_group("nccl" if cuda and
                                os.environ.get("DNC_DIST_BACKEND") != "gloo" else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def make_envs(cfg: TrainConfig, seed: int) -> gym.vector.VectorEnv:
    """The vector env (NEXT_STEP autoreset, Gymnasium's default), reset with seeds
    ``seed .. seed + num_envs - 1``."""
    try:
        env_spec(cfg.env)
    except gym.error.Error as e:
        raise ValueError(f"env {cfg.env!r} is not a registered Gymnasium id: {e}") from None
    fns = [lambda: gym.make(cfg.env, **cfg.env_kwargs) for _ in range(cfg.num_envs)]
    cls = gym.vector.AsyncVectorEnv if cfg.vector_env == "async" else gym.vector.SyncVectorEnv
    return cls(fns, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but torch.cuda.is_available() is False "
                          "(use auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":  # one GPU per process under torchrun
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        return device
    return torch.device(name)


def build_policy(cfg: TrainConfig, obs_dim: int, spec) -> ActorCritic:
    def core():
        return make_core(cfg.core, input_size=obs_dim, **cfg.core_config)

    return ActorCritic(core(), obs_dim, spec, normalize_obs=cfg.normalize_obs,
                       head_hidden=cfg.head_hidden, head_layers=cfg.head_layers,
                       critic_core=core() if cfg.separate_critic else None)


RMSPROP_DECAY, RMSPROP_EPS = 0.9, 1e-10  # deepmind/dnc's train.py (TensorFlow RMSProp)


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """The config's optimizer: Adam (``adam_eps``) or RMSProp with deepmind/dnc's
    settings (decay 0.9, epsilon 1e-10, no momentum)."""
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=RMSPROP_DECAY, eps=RMSPROP_EPS)
    return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps)


def memory_stats(core, state) -> dict:
    """Scalars about the addressed memory for logging, over the state entries the core
    names in ``debug_state`` (none for an LSTM or GRU): for a weighting over the slots
    (``state_bounds`` sums "last_axis") its focus, the mean largest weight, and its
    total, the mean sum over the slots (a write weighting's total is how much is
    written); for any other (a DNC's usage) its mean and the share of slots above 0.5."""
    out = {}
    with torch.no_grad():
        for name in core.debug_state:
            value = getattr(state, name)
            if core.state_bounds.get(name, {}).get("sums") == "last_axis":
                out[f"memory/{name}_focus"] = float(value.max(-1).values.mean())
                out[f"memory/{name}_total"] = float(value.sum(-1).mean())
            else:
                out[f"memory/{name}_mean"] = float(value.mean())
                out[f"memory/{name}_above_half"] = float((value > 0.5).float().mean())
    return out


def _all_reduce_(tensor: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(tensor)
    return tensor


@dataclass
class Learner:
    """What an update works with. ``model`` is what forward passes call: the policy, or
    its DistributedDataParallel wrapper (which averages gradients across processes)."""

    cfg: TrainConfig
    policy: ActorCritic
    model: nn.Module
    optimizer: torch.optim.Optimizer
    world: int
    progress: float = 0.0  # fraction of total_steps done before this update
    # A loss added to every gradient step's (training.continual's replay of past tasks);
    # called once per step, after the trainer's own loss is built.
    extra_loss: Callable[[], torch.Tensor] | None = None

    def step(self, loss: torch.Tensor) -> float:
        """Backward, clip the gradient norm, optimiser step; returns the norm."""
        if self.extra_loss is not None:
            loss = loss + self.extra_loss()
        self.optimizer.zero_grad(set_to_none=False)
        loss.backward()  # under DDP: gradients averaged across processes here
        norm = nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        return float(norm)

    def all_mean(self, value: float) -> float:
        """``value`` averaged over processes (every rank takes the same decision)."""
        t = torch.tensor([value], dtype=torch.float64,
                         device=next(self.policy.parameters()).device)
        return float(_all_reduce_(t, self.world)[0]) / self.world


Update = Callable[[Learner, Rollout], dict]


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def train(cfg: TrainConfig, update_fn: Update,
          resume: str | Path | ckpt_io.ResumePoint | None = None,
          progress: bool = True, run_dir: str | Path | None = None,
          policy: ActorCritic | None = None) -> dict:
    """Train with ``update_fn``; return ``{"run_dir", "checkpoint", "success", "return",
    "episodes", "global_step", "seconds", "param_checksum"}`` (rolling figures over the
    last ``success_window`` episodes).

    ``resume``: a run folder (continued in that folder from its newest complete
    checkpoint), a checkpoint in a run's ``checkpoints/`` (continued in that run; it must
    be the run's newest) or any other checkpoint file (continued in a new run folder);
    see :func:`training.checkpoint.resume_point`. ``run_dir`` overrides the folder.
    ``policy``: train this module (built by :func:`build_policy` for ``cfg``, on
    ``cfg``'s device; a resume loads the checkpoint's weights into it) instead of a new
    one, so that a caller training it over several calls (training.continual, task after
    task) compiles its step once.
    Nothing is created on disk before the config, the policy and the envs are known to
    work. A NaN or an infinity in the weights or the optimiser state stops the run with
    :class:`training.checkpoint.NonFiniteError` and is never saved."""
    torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    rank, world = distributed(device)
    point = resume if isinstance(resume, ckpt_io.ResumePoint) or resume is None \
        else ckpt_io.resume_point(resume)
    resumed = point.checkpoint if point else None

    try:  # a value the env refuses: one line, the env's own message
        probe = make_env(cfg.env, cfg.env_kwargs, f"env_kwargs: {cfg.env} refuses {cfg.env_kwargs}")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    flatten = ObsFlattener(probe.observation_space)
    spec = action_spec(probe.action_space)
    action_space, obs_space = probe.action_space, probe.observation_space
    probe.close()

    torch.manual_seed(cfg.seed + rank)  # before the weights are drawn
    given = policy is not None
    if not given:
        try:
            policy = build_policy(cfg, flatten.dim, spec).to(device)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"core_config: core {cfg.core!r} refuses {cfg.core_config}: "
                              f"{' '.join(str(e).split())}") from None
    elif policy.obs_dim != flatten.dim or policy.action != spec:
        raise ConfigError(f"env: {cfg.env} {cfg.env_kwargs} has {flatten.dim} observation "
                          f"values and actions {spec.kind}; the policy given takes "
                          f"{policy.obs_dim} and {policy.action.kind}")
    optimizer = make_optimizer(cfg, policy.parameters())
    global_step, update = 0, 0
    if resumed:
        load_training_state(point, policy, optimizer)
        global_step, update = resumed["global_step"], resumed["update"]
        restore_rng(resumed, cfg, rank, device)
    use_compile, why = compile_enabled(cfg, device.type)
    if use_compile and not policy.core.compiled:
        if cfg.compile == "auto":  # a compile that fails falls back to the eager step
            torch._dynamo.config.suppress_errors = True
        chunk, why_chunk = compile_chunk(cfg, device.type)
        for core in policy.cores:
            core.compile_step(chunk=chunk)
        if rank == 0:
            print(f"{why}; {why_chunk}: the first updates include a one-off compile",
                  file=sys.stderr, flush=True)
    model = policy
    if world > 1:
        # DDP starts every rank from rank 0's weights and averages the gradients in
        # backward. A replay calls it once per step before one backward, which DDP
        # supports. The normaliser's statistics are pooled by hand after each update
        # (_update_normaliser), so DDP need not broadcast buffers at every forward.
        model = nn.parallel.DistributedDataParallel(
            policy, device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False)
    learner = Learner(cfg, policy, model, optimizer, world)

    # Env seeds: distinct per rank and env, and per resume (a resumed run starts fresh
    # episodes; episodes in flight at the checkpoint are not continued).
    env_seed = cfg.seed * 100_003 + rank * cfg.num_envs + update * 7919
    envs = make_envs(cfg, env_seed)
    try:
        carry = start_carry(policy, envs, [env_seed + i for i in range(cfg.num_envs)], device)
        tail = None  # bptt_context: the last rollout's last steps (none before the first)
    except (ValueError, gym.error.Error) as e:
        envs.close()
        raise ConfigError(f"env_kwargs: {cfg.env} refuses {cfg.env_kwargs}: "
                          f"{' '.join(str(e).split())}") from None
    tracker = EpisodeTracker(cfg.num_envs, cfg.success_window)
    scaler = RewardScaler(cfg.num_envs, cfg.gamma, device) if cfg.normalize_rewards else None
    if scaler is not None and resumed and resumed.get("reward_norm"):
        # The statistics go on; the per-env returns restart with the fresh episodes.
        scaler.stats.load_state_dict(resumed["reward_norm"])
    if resumed and rank == 0:  # the saved figures are rank 0's
        restore_episodes(tracker, resumed)

    # The run folder, only now that the config, the policy and the envs work: the one
    # given, the resumed run's (the folder the user named, never the path stored in the
    # checkpoint, which may be another copy of the run), or a new one.
    if run_dir is None and point is not None and point.run_dir is not None:
        run_dir = point.run_dir
    new_folder = run_dir is None
    if run_dir is None:  # rank 0 alone writes (other ranks never touch the folder)
        run_dir = new_run_dir(cfg) if rank == 0 else Path(cfg.run_dir) / f"rank{rank}"
    run_dir = Path(run_dir)
    # config.yaml describes the run's newest checkpoint: a new folder gets it now; a run
    # continued in its folder keeps the old one until this session saves a checkpoint
    # (a resume that fails or diverges before then leaves config.yaml and latest.pt as
    # they were, in agreement).
    config_pending = resumed is not None and not new_folder
    if rank == 0 and resumed:
        print(f"resuming {point.path} at step {global_step} in {run_dir}", file=sys.stderr,
              flush=True)

    steps_per_update = cfg.num_envs * cfg.rollout_steps * world
    start, first_step, last_ckpt_step = time.perf_counter(), global_step, global_step
    # The checkpoint this call wrote last, and the last good one (for error messages).
    latest, good = None, point.path if point else None
    log = None
    try:
        log = RunLogger(run_dir, cfg, global_step, progress,
                      resume_step=global_step if resumed else None,
                      config_now=not config_pending) if rank == 0 else None
        while global_step < cfg.total_steps:
            # Linear in env steps (not updates), so a resume with more envs or processes
            # still ends at 0 and never goes negative.
            learner.progress = min(1.0, global_step / cfg.total_steps)
            lr = cfg.lr * (1.0 - learner.progress) if cfg.lr_schedule == "linear" else cfg.lr
            for g in optimizer.param_groups:
                g["lr"] = lr
            try:
                rollout, carry = collect_rollout(policy, envs, carry, cfg.rollout_steps,
                                                 flatten, action_space, cfg.window, tracker)
                if scaler is not None:  # normalize_rewards: before GAE sees them
                    scaler.scale_(rollout, lambda norm, x: _fold(norm, x, world, device))
                if cfg.bptt_context:  # the previous rollout's last steps, replayed first
                    rollout.context = tail or Context.before_first(rollout, cfg.bptt_context)
                    tail = Context.of(rollout, cfg.bptt_context)
                parts = update_fn(learner, rollout)
            except NonFiniteDistribution as e:  # finite weights, diverged outputs
                raise ckpt_io.NonFiniteError(
                    f"training diverged at update {update + 1}: {e}; "
                    + (f"the last good checkpoint is {str(good)!r} (resume it with a lower "
                       f"lr or max_grad_norm)" if good else "no checkpoint yet")) from None
            if cfg.normalize_obs:  # after the update: constant within a rollout
                _fold(policy.obs_norm, rollout.obs.reshape(-1, flatten.dim), world, device)
            update += 1
            global_step += steps_per_update
            try:  # a diverged update stops the run before it is logged or saved
                ckpt_io.check_finite(policy, optimizer,
                                     f" at update {update} (step {global_step})")
            except ckpt_io.NonFiniteError as e:
                raise ckpt_io.NonFiniteError(
                    f"{e}; nothing of it was saved: "
                    + (f"the last good checkpoint is {str(good)!r} (resume it with a lower "
                       f"lr or max_grad_norm)" if good else "no checkpoint yet")) from None

            success, n_success = _rolling(tracker.successes, world, device)
            if log:
                fps = (global_step - first_step) / max(time.perf_counter() - start, 1e-9)
                log.update(global_step, update, tracker, success, fps, lr, parts,
                           memory_stats(policy.core, carry.state),
                           force=global_step >= cfg.total_steps)
            # Pooled figures: every process takes the same decision (no DDP deadlock).
            needed = min(cfg.success_window, cfg.stop_min_episodes) * world
            stop = (cfg.stop_at_success > 0 and n_success >= needed
                    and success >= cfg.stop_at_success)
            if rank == 0 and (global_step - last_ckpt_step >= cfg.checkpoint_every
                              or global_step >= cfg.total_steps or stop):
                latest = good = save_checkpoint(cfg, policy, optimizer, run_dir, flatten,
                                                obs_space, action_space, global_step, update,
                                                tracker, scaler)
                last_ckpt_step = global_step
                if config_pending:  # with the first checkpoint of a resumed session
                    write_config(run_dir, cfg)
                    config_pending = False
            if stop:
                break
    finally:
        envs.close()
        if log:
            log.close()
    if latest is None and point is not None and point.run_dir == run_dir:
        latest = point.path  # resumed at or past total_steps: the run's checkpoint is it
    flat_params = torch.cat([p.detach().reshape(-1).cpu() for p in policy.parameters()])
    return {"run_dir": str(run_dir), "checkpoint": str(latest) if latest else None,
            "success": _rolling(tracker.successes, world, device)[0],
            "return": float(np.mean(tracker.returns)) if tracker.returns else float("nan"),
            "episodes": tracker.episodes, "global_step": global_step,
            "seconds": time.perf_counter() - start,
            "param_checksum": float(flat_params.double().abs().sum())}


def _rolling(window: deque, world: int, device: torch.device | None = None
             ) -> tuple[float, int]:
    """``(mean, count)`` of a rolling window pooled over processes (NaN when empty)."""
    s = torch.tensor([float(sum(window)), float(len(window))], dtype=torch.float64,
                     device=device)
    _all_reduce_(s, world)
    return (float(s[0] / s[1]) if s[1] > 0 else float("nan")), int(s[1])


def _fold(norm, x: torch.Tensor, world: int, device: torch.device) -> None:
    """Fold a batch ``x [n, d]`` into ``norm`` (a :class:`~dnc_core.policy.RunningNorm`:
    the observation normaliser, the reward scaler's statistics); with several processes,
    every process folds in every process's (count, mean, variance) in rank order, the
    same parallel-Welford path as one process, so all stay identical."""
    x = x.to(device=device, dtype=torch.float64)
    empty = torch.zeros(x.shape[1], dtype=torch.float64, device=device)  # no row: no moments
    moments = torch.cat([torch.tensor([float(len(x))], dtype=torch.float64, device=device),
                         x.mean(0) if len(x) else empty,
                         x.var(0, unbiased=False) if len(x) else empty])
    parts = [moments]
    if world > 1:
        parts = [torch.zeros_like(moments) for _ in range(world)]
        dist.all_gather(parts, moments)
    d = x.shape[1]
    for m in parts:
        if m[0] > 0:  # e.g. a one-step rollout of autoreset rows only (reward returns)
            norm.update_moments(m[0], m[1:1 + d], m[1 + d:])


def cli(algo: str, update_fn: Update, doc: str, argv=None) -> dict:
    """The command line of ``python -m training.<algo>`` (both trainers share it)."""
    p = argparse.ArgumentParser(prog=f"python -m training.{algo}",
                                description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=doc.split("\n\n", 1)[1])
    p.add_argument("--config", help="YAML file over the embedded default (training/configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable; core_config.hidden_size=128)")
    p.add_argument("--env", help="any registered Gymnasium env id")
    p.add_argument("--core", choices=sorted(CORES))
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--total-steps", type=int)
    p.add_argument("--resume", metavar="RUN_OR_CKPT",
                   help="continue with the checkpoint's config: a run folder continues in "
                        "that folder from its newest complete checkpoint; a checkpoint file "
                        "in <run>/checkpoints continues that run and must be its newest; "
                        "any other checkpoint file starts a new run folder under run_dir "
                        "(see docs/TRAINING.md)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    try:
        return _run(p, a, algo, update_fn)
    except (ConfigError, ckpt_io.CheckpointError) as e:
        p.exit(2, f"error: {e}\n")
    except ckpt_io.NonFiniteError as e:  # diverged: nothing saved, the last good one kept
        p.exit(1, f"error: {e}\n")


def _run(p: argparse.ArgumentParser, a: argparse.Namespace, algo: str,
         update_fn: Update) -> dict:
    explicit = dict(env=a.env, core=a.core, seed=a.seed, device=a.device,
                    total_steps=a.total_steps)
    point = None
    if a.resume:
        point = ckpt_io.resume_point(a.resume)
        cfg = TrainConfig.from_dict(point.checkpoint["config"],
                                    source=f"checkpoint {str(point.path)!r}")
        if a.config or a.env or a.core:
            p.error("--resume takes the run's own config; only --set, --seed, --device and "
                    "--total-steps may change it")
        if cfg.algo != algo:
            raise ConfigError(f"checkpoint {a.resume} was trained by {cfg.algo}; resume it "
                              f"with python -m training.{cfg.algo}")
        fixed = [item for item in a.set if item.split("=", 1)[0].split(".", 1)[0] in
                 ("algo", "core", "core_config", "head_hidden", "head_layers",
                  "separate_critic", "normalize_obs", "env")]
        if fixed:
            raise ConfigError(f"--resume: {fixed[0]!r} would change the policy the checkpoint "
                              f"holds; start a new run instead")
        if point.run_dir is not None and any(
                item.split("=", 1)[0].strip() == "run_dir" for item in a.set):
            raise ConfigError(f"--resume: run_dir cannot be set when continuing the run "
                              f"folder {str(point.run_dir)!r}: the run continues there "
                              f"(run_dir only places the new run folder of a checkpoint "
                              f"file from outside a run)")
        cfg = cfg.override(a.set + [f"{k}={v}" for k, v in explicit.items() if v is not None])
    else:
        cfg = resolve(a.config, a.set, algo=algo, **explicit)
    if cfg.algo != algo:
        raise ConfigError(f"algo: {cfg.algo!r} cannot be set on the {algo} trainer; use "
                          f"python -m training.{cfg.algo}")
    result = train(cfg, update_fn, resume=point, progress=not a.no_progress)
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        print(f"run: {result['run_dir']}\ncheckpoint: {result['checkpoint']}\n"
              f"steps: {result['global_step']}  episodes: {result['episodes']}  "
              f"success (last {cfg.success_window}): {result['success']:.3f}  "
              f"return: {result['return']:.3f}  time: {result['seconds']:.0f} s")
    if dist.is_initialized():  # lets a user (and the tests) see that ranks stayed in sync
        print(f"rank {rank}: parameter checksum {result['param_checksum']:.10g}")
    if dist.is_initialized():
        # Leave together: rank 0 may still be writing its last checkpoint, and a rank
        # that tears gloo down alone can abort the other one's connection.
        dist.barrier()
        dist.destroy_process_group()
        # torch 2.13 + gloo: a non-zero rank can abort at interpreter teardown
        # ("terminate called without an active exception", ~10% of runs) from a
        # c10d thread destroyed while joinable. All output is written and closed by
        # now, so leave without running static destructors.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return result
