"""Synchronous A2C with GAE(λ) for recurrent (DNC / LSTM) policies, in one file.

    python -m training.a2c                          # embedded default: DNC on the T-maze
    python -m training.a2c --config training/configs/maze_dnc.yaml --set lr=5e-4
    python -m training.a2c --env CartPole-v1 --core lstm --total-steps 100000
    python -m training.a2c --resume runs/dnc_TMaze-v0_dnc_s1_20261122-010203
    torchrun --nproc_per_node=2 -m training.a2c ...  # data-parallel over processes

The loop, top to bottom (read with DESIGN.md §6):

1. Rollout of ``rollout_steps`` steps in ``num_envs`` envs. The recurrent state carried
   in from the last rollout is detached first (truncated BPTT). A2C makes exactly one
   update per rollout, so the rollout's forward passes keep their graph and the update
   back-propagates through them directly: no second forward over the rollout.
2. Gymnasium 1.x vector envs autoreset on the step *after* an episode ends (NEXT_STEP).
   That step ignores its action and returns the new episode's first observation with
   reward 0: it is marked invalid and masked out of the losses and of GAE. Its policy
   forward is not wasted: it ran on the ended episode's final observation with the
   memory that episode carried, so its value is exactly V(final observation) under the
   carried memory, the bootstrap a truncated episode needs. The observation after it
   starts a new episode, so the next step's ``reset`` mask is set and the core resets
   that row's memory before the step.
3. GAE(λ) (:func:`compute_gae`): terminations bootstrap 0, truncations bootstrap
   V(final observation), episode ends cut the λ-chain, invalid rows get no advantage.
4. Loss over valid rows: policy gradient with (normalised) advantages, value loss,
   entropy bonus; gradient-norm clipping; learning rate linear to 0 or constant.
5. Observation normaliser updated with the rollout's observations after the update
   (constant within a rollout), pooled across processes.

Several processes (``torchrun``): each rank steps its own envs (seeded by rank), the
policy is wrapped in DistributedDataParallel (gloo on CPU, NCCL on GPU; set
``DNC_DIST_BACKEND=gloo`` to force gloo), gradients are averaged in backward, success
statistics and normaliser moments are all-reduced, and rank 0 alone logs and saves.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

import sim  # noqa: F401  (registers the dnc/ envs)
from dnc_core import ActorCritic, make_core
from training import checkpoint as ckpt_io
from training.config import ConfigError, TrainConfig, resolve
from training.spaces import ObsFlattener, action_spec, describe_space, to_env_actions


# --------------------------------------------------------------------------------------
# Advantage estimation (pure, tested against hand-computed returns)
# --------------------------------------------------------------------------------------
def compute_gae(rewards: Tensor, values: Tensor, bootstrap: Tensor, terminated: Tensor,
                truncated: Tensor, valid: Tensor, gamma: float, lam: float) -> Tensor:
    """GAE(λ) over a time-major rollout; every argument is ``[T, B]`` but ``bootstrap [B]``.

    ``values[t]`` is V(obs_t); ``bootstrap`` is V(obs_T) for the observation after the
    rollout. Row ``t`` is a real transition iff ``valid[t]``. A truncated transition at
    ``t`` bootstraps from ``values[t + 1]`` (or ``bootstrap``), which under NEXT_STEP
    autoreset is V(final observation); a terminated one bootstraps 0. Returns the
    advantages ``[T, B]``, 0 on invalid rows.
    """
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(bootstrap)
    next_value = bootstrap
    for t in reversed(range(rewards.shape[0])):
        ended = torch.maximum(terminated[t], truncated[t])
        delta = rewards[t] + gamma * next_value * (1.0 - terminated[t]) - values[t]
        last = (delta + gamma * lam * (1.0 - ended) * last) * valid[t]
        advantages[t] = last
        next_value = values[t]
    return advantages


# --------------------------------------------------------------------------------------
# Set-up helpers
# --------------------------------------------------------------------------------------
def distributed() -> tuple[int, int]:
    """``(rank, world_size)``; joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and
                                os.environ.get("DNC_DIST_BACKEND") != "gloo" else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def make_envs(cfg: TrainConfig, seed: int) -> gym.vector.VectorEnv:
    """The vector env (NEXT_STEP autoreset, Gymnasium's default), reset with seeds
    ``seed .. seed + num_envs - 1``."""
    try:
        gym.spec(cfg.env)
    except gym.error.Error as e:
        raise ValueError(f"env {cfg.env!r} is not a registered Gymnasium id: {e}") from None
    fns = [lambda: gym.make(cfg.env, **cfg.env_kwargs) for _ in range(cfg.num_envs)]
    cls = gym.vector.AsyncVectorEnv if cfg.vector_env == "async" else gym.vector.SyncVectorEnv
    return cls(fns, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":  # one GPU per process under torchrun
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        return device
    return torch.device(name)


def new_run_dir(cfg: TrainConfig) -> Path:
    """``<run_dir>/<env>_<core>_s<seed>_<timestamp>``, never an existing folder (runs
    started in the same second get a suffix)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.run_dir) / f"{cfg.env.replace('/', '_')}_{cfg.core}_s{cfg.seed}_{stamp}"
    path, k = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            k += 1
            path = base.with_name(f"{base.name}-{k}")


def build_policy(cfg: TrainConfig, obs_dim: int, spec) -> ActorCritic:
    core = make_core(cfg.core, input_size=obs_dim, **cfg.core_config)
    return ActorCritic(core, obs_dim, spec, normalize_obs=cfg.normalize_obs,
                       head_hidden=cfg.head_hidden)


def memory_stats(state) -> dict:
    """Scalars about the memory for logging (DNC states only)."""
    if not hasattr(state, "usage"):
        return {}
    with torch.no_grad():
        return {"memory/usage_mean": float(state.usage.mean()),
                "memory/slots_used": float((state.usage > 0.5).float().mean()),
                "memory/read_sharpness": float(state.read_weights.max(-1).values.mean()),
                "memory/write_strength": float(state.write_weights.sum(-1).mean())}


def _all_reduce_(tensor: Tensor, world: int) -> Tensor:
    if world > 1:
        dist.all_reduce(tensor)
    return tensor


def _info_flags(info: dict, key: str, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(values, present)`` of a boolean info key of a vector env, or None if absent."""
    if key not in info:
        return None
    mask = info.get(f"_{key}", np.ones(n, bool))
    return np.where(mask, np.asarray(info[key], dtype=bool), False), mask


# --------------------------------------------------------------------------------------
# Rollout
# --------------------------------------------------------------------------------------
@dataclass
class Carry:
    """What one rollout hands to the next: the env's next observation, the recurrent
    state, the reset mask for the next step and which envs just ended an episode."""

    next_obs: np.ndarray
    state: Any
    reset: Tensor  # [B] 1 = the next observation starts an episode
    prev_done: np.ndarray  # [B] the last step ended an episode (next step autoresets)


@dataclass
class Rollout:
    """One rollout, time-major ``[T, B]``. ``logp``, ``value``, ``entropy`` carry graph."""

    logp: Tensor
    value: Tensor
    entropy: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    valid: Tensor  # 0 on NEXT_STEP autoreset rows (the env ignored that action)
    resets: Tensor  # the reset mask each step was taken with
    bootstrap: Tensor  # [B] V(obs_T)
    obs: np.ndarray  # [T, B, obs_dim] flattened observations (for the normaliser)
    final_state: Any  # the state before obs_T (detached at the next rollout's start)


class EpisodeTracker:
    """Returns, lengths and successes of finished episodes, over a rolling window."""

    def __init__(self, num_envs: int, window: int):
        self.ret, self.len = np.zeros(num_envs), np.zeros(num_envs, np.int64)
        self.returns, self.lengths = deque(maxlen=window), deque(maxlen=window)
        self.successes = deque(maxlen=window)
        self.episodes = 0

    def step(self, reward, terminated, truncated, valid, info) -> None:
        self.ret += reward * valid
        self.len += valid
        done = (terminated | truncated) & valid
        if not done.any():
            return
        succ = _info_flags(info, "is_success", len(done))
        for i in np.flatnonzero(done):
            self.returns.append(float(self.ret[i]))
            self.lengths.append(int(self.len[i]))
            if succ is not None and succ[1][i]:
                self.successes.append(float(succ[0][i]))
            self.episodes += 1
        self.ret[done], self.len[done] = 0.0, 0


def start_carry(policy: ActorCritic, envs: gym.vector.VectorEnv, seeds: list[int],
                device: torch.device) -> Carry:
    obs, _ = envs.reset(seed=seeds)
    n = envs.num_envs
    return Carry(obs, policy.initial_state(n, device=device), torch.ones(n, device=device),
                 np.zeros(n, bool))


def collect_rollout(policy: ActorCritic, envs: gym.vector.VectorEnv, carry: Carry,
                    steps: int, flatten: ObsFlattener, action_space: gym.Space,
                    tracker: EpisodeTracker | None = None,
                    model: nn.Module | None = None) -> tuple[Rollout, Carry]:
    """Step ``envs`` ``steps`` times with ``policy`` (graph kept), starting from ``carry``.

    The carried state is detached first: gradients stop at the rollout's start.
    ``model`` is what the forward passes call: the policy itself, or its
    DistributedDataParallel wrapper (which averages the gradients across processes).
    """
    model = policy if model is None else model
    device = carry.reset.device
    state = type(carry.state)(*(s.detach() for s in carry.state))
    reset, prev_done, next_obs = carry.reset, carry.prev_done, carry.next_obs
    n = envs.num_envs
    logps, values, entropies, resets, obs_seen = [], [], [], [], []
    rewards = np.zeros((steps, n), np.float32)
    terms, truncs, valids = (np.zeros((steps, n), np.float32) for _ in range(3))
    for t in range(steps):
        obs_np = flatten(next_obs)
        obs_seen.append(obs_np)
        resets.append(reset)
        out, state = model(torch.from_numpy(obs_np).to(device), state, reset)
        dist_t = policy.distribution(out)
        with torch.no_grad():
            action = dist_t.sample()
        logps.append(dist_t.log_prob(action))
        entropies.append(dist_t.entropy())
        values.append(out.value)
        env_action = to_env_actions(policy.env_action(action).detach().cpu().numpy(),
                                    action_space)
        next_obs, reward, terminated, truncated, info = envs.step(env_action)
        valid = ~prev_done  # NEXT_STEP: the step right after an episode end is a reset
        rewards[t], terms[t], truncs[t], valids[t] = reward, terminated, truncated, valid
        if tracker is not None:
            tracker.step(reward, terminated, truncated, valid, info)
        prev_done = (terminated | truncated) & valid
        # An autoreset step returned the new episode's first observation: reset next.
        reset = torch.from_numpy((~valid).astype(np.float32)).to(device)
    with torch.no_grad():  # V(obs_T), the bootstrap after the last step
        boot, _ = model(torch.from_numpy(flatten(next_obs)).to(device), state, reset)
    as_t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    rollout = Rollout(torch.stack(logps), torch.stack(values), torch.stack(entropies),
                      as_t(rewards), as_t(terms), as_t(truncs), as_t(valids),
                      torch.stack(resets), boot.value, np.stack(obs_seen), state)
    return rollout, Carry(next_obs, state, reset, prev_done)


def a2c_loss(r: Rollout, cfg: TrainConfig) -> tuple[Tensor, dict]:
    """The A2C loss over the valid rows of a rollout, and its parts for logging."""
    adv = compute_gae(r.rewards, r.value.detach(), r.bootstrap, r.terminated, r.truncated,
                      r.valid, cfg.gamma, cfg.gae_lambda)
    target = adv + r.value.detach()
    n_valid = r.valid.sum().clamp(min=1.0)
    if cfg.normalize_advantages:
        mean = (adv * r.valid).sum() / n_valid
        std = (((adv - mean) ** 2 * r.valid).sum() / n_valid).sqrt()
        adv = (adv - mean) / (std + 1e-8) * r.valid
    policy_loss = -(adv * r.logp * r.valid).sum() / n_valid
    value_loss = 0.5 * ((target - r.value) ** 2 * r.valid).sum() / n_valid
    entropy = (r.entropy * r.valid).sum() / n_valid
    loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
    return loss, {"losses/policy": policy_loss.item(), "losses/value": value_loss.item(),
                  "losses/entropy": entropy.item()}


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def train(cfg: TrainConfig, resume: str | None = None, progress: bool = True,
          run_dir: str | Path | None = None) -> dict:
    """Train; return ``{"run_dir", "checkpoint", "success", "return", "episodes",
    "global_step", "seconds", "param_checksum"}`` (rolling figures over the last
    ``success_window`` episodes)."""
    rank, world = distributed()
    torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    resumed = ckpt_io.load(resume, map_location=device) if resume else None

    probe = gym.make(cfg.env, **cfg.env_kwargs)
    flatten = ObsFlattener(probe.observation_space)
    spec = action_spec(probe.action_space)
    action_space, obs_space = probe.action_space, probe.observation_space
    probe.close()

    torch.manual_seed(cfg.seed + rank)  # before the weights are drawn
    policy = build_policy(cfg, flatten.dim, spec).to(device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
    global_step, update = 0, 0
    if resumed:
        policy.load_state_dict(resumed["policy_state"])
        optimizer.load_state_dict(resumed["optimizer_state"])
        global_step, update = resumed["global_step"], resumed["update"]
        restore_rng(resumed, cfg, rank, device)
        run_dir = Path(resumed["run_dir"]) if run_dir is None else Path(run_dir)
    else:
        if run_dir is None:  # rank 0 alone writes (other ranks never touch the folder)
            run_dir = new_run_dir(cfg) if rank == 0 else Path(cfg.run_dir) / f"rank{rank}"
        run_dir = Path(run_dir)
    if cfg.compile:
        policy.core.compile_step()
    model = policy
    if world > 1:
        # DDP starts every rank from rank 0's weights and averages the gradients in
        # backward. A rollout calls it rollout_steps times before one backward, which
        # DDP supports. The normaliser's statistics are pooled by hand after each update
        # (_update_normaliser), so DDP need not broadcast buffers at every forward.
        model = nn.parallel.DistributedDataParallel(
            policy, device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False)

    # Env seeds: distinct per rank and env, and per resume (a resumed run starts fresh
    # episodes; episodes in flight at the checkpoint are not continued).
    env_seed = cfg.seed * 100_003 + rank * cfg.num_envs + update * 7919
    envs = make_envs(cfg, env_seed)
    carry = start_carry(policy, envs, [env_seed + i for i in range(cfg.num_envs)], device)
    tracker = EpisodeTracker(cfg.num_envs, cfg.success_window)

    log = _Logger(run_dir, cfg, global_step, progress) if rank == 0 else None
    steps_per_update = cfg.num_envs * cfg.rollout_steps * world
    start, first_step, last_ckpt_step, latest = time.perf_counter(), global_step, global_step, None
    while global_step < cfg.total_steps:
        # Linear in env steps (not updates), so a resume with more envs or processes
        # still ends at 0 and never goes negative.
        lr = (cfg.lr * max(0.0, 1.0 - global_step / cfg.total_steps)
              if cfg.lr_schedule == "linear" else cfg.lr)
        for g in optimizer.param_groups:
            g["lr"] = lr
        rollout, carry = collect_rollout(policy, envs, carry, cfg.rollout_steps, flatten,
                                         action_space, tracker, model)
        loss, parts = a2c_loss(rollout, cfg)
        optimizer.zero_grad(set_to_none=False)
        loss.backward()  # under DDP: gradients averaged across processes here
        grad_norm = float(nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm))
        optimizer.step()
        if cfg.normalize_obs:  # after the update: constant within a rollout
            _update_normaliser(policy, rollout.obs.reshape(-1, flatten.dim), world, device)
        update += 1
        global_step += steps_per_update

        success, n_success = _rolling(tracker.successes, world)
        if log:
            fps = (global_step - first_step) / max(time.perf_counter() - start, 1e-9)
            log.update(global_step, update, tracker, success, fps, lr, grad_norm, parts,
                       memory_stats(carry.state), force=global_step >= cfg.total_steps)
        # Pooled figures: every process takes the same decision (no DDP deadlock).
        stop = (cfg.stop_at_success > 0 and n_success >= min(cfg.success_window, 20) * world
                and success >= cfg.stop_at_success)
        if rank == 0 and (global_step - last_ckpt_step >= cfg.checkpoint_every
                          or global_step >= cfg.total_steps or stop):
            latest = save_checkpoint(cfg, policy, optimizer, run_dir, flatten, obs_space,
                                     action_space, global_step, update)
            last_ckpt_step = global_step
        if stop:
            break

    envs.close()
    if log:
        log.close()
    flat_params = torch.cat([p.detach().reshape(-1).cpu() for p in policy.parameters()])
    return {"run_dir": str(run_dir), "checkpoint": str(latest) if latest else None,
            "success": _rolling(tracker.successes, world)[0],
            "return": float(np.mean(tracker.returns)) if tracker.returns else float("nan"),
            "episodes": tracker.episodes, "global_step": global_step,
            "seconds": time.perf_counter() - start,
            "param_checksum": float(flat_params.double().abs().sum())}


class _Logger:
    """Rank 0's outputs: progress bar, TensorBoard events, metrics.csv, config.yaml."""

    COLUMNS = ["global_step", "episodes", "return", "success", "length", "fps",
               "policy_loss", "value_loss", "entropy", "grad_norm", "lr", "wall_s"]

    def __init__(self, run_dir: Path, cfg: TrainConfig, global_step: int, progress: bool):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError("TensorBoard logging needs the 'train' extra: "
                              "pip install 'dnc-policy[train]'") from e
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(_yaml_dump(cfg.to_dict()))
        self.cfg, self.start = cfg, time.perf_counter()
        self.writer = SummaryWriter(str(run_dir))
        new_csv = not (run_dir / "metrics.csv").exists()
        self.csv_file = open(run_dir / "metrics.csv", "a", newline="")
        self.csv = csv.writer(self.csv_file)
        if new_csv:
            self.csv.writerow(self.COLUMNS)
        self.bar = tqdm(total=cfg.total_steps, initial=min(global_step, cfg.total_steps),
                        disable=not progress, unit="step", dynamic_ncols=True,
                        desc=f"a2c {cfg.core} {cfg.env}")

    def update(self, global_step, update, tracker, success, fps, lr, grad_norm, parts,
               memory, force=False) -> None:
        ret = float(np.mean(tracker.returns)) if tracker.returns else float("nan")
        length = float(np.mean(tracker.lengths)) if tracker.lengths else float("nan")
        self.bar.update(max(0, min(global_step, self.cfg.total_steps) - self.bar.n))
        self.bar.set_postfix(fps=f"{fps:.0f}", ret=f"{ret:.2f}",
                             success=f"{success:.2f}" if success == success else "-")
        if not (force or update % self.cfg.log_every == 0):
            return
        scalars = {"charts/return": ret, "charts/success": success,
                   "charts/episode_length": length, "charts/fps": fps, "charts/lr": lr,
                   "charts/episodes": tracker.episodes, "losses/grad_norm": grad_norm,
                   **parts, **memory}
        for k, v in scalars.items():
            if v == v:  # NaN until an episode has finished
                self.writer.add_scalar(k, v, global_step)
        self.csv.writerow([global_step, tracker.episodes, ret, success, length, round(fps),
                           parts["losses/policy"], parts["losses/value"],
                           parts["losses/entropy"], grad_norm, lr,
                           round(time.perf_counter() - self.start, 4)])
        self.csv_file.flush()

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
        self.csv_file.close()


def _rolling(window: deque, world: int) -> tuple[float, int]:
    """``(mean, count)`` of a rolling window pooled over processes (NaN when empty)."""
    s = torch.tensor([float(sum(window)), float(len(window))], dtype=torch.float64)
    _all_reduce_(s, world)
    return (float(s[0] / s[1]) if s[1] > 0 else float("nan")), int(s[1])


def restore_rng(ckpt: dict, cfg: TrainConfig, rank: int, device: torch.device) -> None:
    """Rank 0 continues the saved random streams exactly (CPU, and CUDA where saved);
    other ranks, whose streams were not saved, get their own seed derived from the
    update count, so ranks never share sampling noise."""
    if rank == 0:
        torch.set_rng_state(ckpt["torch_rng_state"].cpu())
        if device.type == "cuda" and ckpt.get("cuda_rng_state") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng_state"].cpu(), device)
    else:
        torch.manual_seed(cfg.seed + rank + 7919 * ckpt["update"])


def _update_normaliser(policy: ActorCritic, obs: np.ndarray, world: int,
                       device: torch.device) -> None:
    """Fold this rollout's observations into the normaliser; with several processes,
    every process folds in every process's (count, mean, variance) in rank order, the
    same parallel-Welford path as one process, so all stay identical."""
    x = torch.from_numpy(obs).to(device=device, dtype=torch.float64)
    moments = torch.cat([torch.tensor([float(len(x))], dtype=torch.float64, device=device),
                         x.mean(0), x.var(0, unbiased=False)])
    parts = [moments]
    if world > 1:
        parts = [torch.zeros_like(moments) for _ in range(world)]
        dist.all_gather(parts, moments)
    d = x.shape[1]
    for m in parts:
        policy.obs_norm.update_moments(m[0], m[1:1 + d], m[1 + d:])


def save_checkpoint(cfg: TrainConfig, policy: ActorCritic, optimizer, run_dir: Path,
                    flatten: ObsFlattener, obs_space, action_space, global_step: int,
                    update: int) -> Path:
    """Atomically write ``checkpoints/step_<n>.pt`` and ``checkpoints/latest.pt``."""
    data = {"format": ckpt_io.FORMAT, "version": ckpt_io.VERSION,
            "policy_config": policy.config(),
            "policy_state": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
            "env": cfg.env, "env_kwargs": dict(cfg.env_kwargs),
            "observation_space": describe_space(obs_space),
            "action_space": describe_space(action_space), "obs_dim": flatten.dim,
            "global_step": global_step, "update": update, "config": cfg.to_dict(),
            "torch_rng_state": torch.get_rng_state(),
            "cuda_rng_state": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            "run_dir": str(run_dir),
            "versions": ckpt_io.versions()}
    folder = run_dir / "checkpoints"
    ckpt_io.atomic_save(data, folder / f"step_{global_step:010d}.pt")
    return ckpt_io.atomic_save(data, folder / "latest.pt")


def _yaml_dump(data: dict) -> str:
    import yaml
    return yaml.safe_dump(data, sort_keys=False)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", help="YAML file over the embedded default (training/configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable; core_config.hidden_size=128)")
    p.add_argument("--env", help="any registered Gymnasium env id")
    p.add_argument("--core", choices=["dnc", "lstm"])
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--total-steps", type=int)
    p.add_argument("--resume", metavar="RUN_OR_CKPT",
                   help="continue a run (its folder or a checkpoint) with its config")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    try:
        return _run(p, a)
    except (ConfigError, ckpt_io.CheckpointError) as e:
        p.exit(2, f"error: {e}\n")


def _run(p: argparse.ArgumentParser, a: argparse.Namespace) -> dict:
    explicit = dict(env=a.env, core=a.core, seed=a.seed, device=a.device,
                    total_steps=a.total_steps)
    if a.resume:
        saved = ckpt_io.load(a.resume)
        cfg = TrainConfig.from_dict(saved["config"], source=f"checkpoint {a.resume}")
        if a.config or a.env or a.core:
            p.error("--resume takes the run's own config; only --set, --seed, --device and "
                    "--total-steps may change it")
        cfg = cfg.override(a.set + [f"{k}={v}" for k, v in explicit.items() if v is not None])
    else:
        cfg = resolve(a.config, a.set, **explicit)
    result = train(cfg, resume=a.resume, progress=not a.no_progress)
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


if __name__ == "__main__":
    main()
