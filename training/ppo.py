"""Recurrent PPO (clipped surrogate, GAE(λ)) for DNC / LSTM / GRU policies.

    python -m training.ppo                          # embedded default: DNC on the T-maze
    python -m training.ppo --config training/configs/ppo_tmaze_dnc.yaml --seed 3
    python -m training.ppo --env CartPole-v1 --core gru --total-steps 100000
    python -m training.ppo --resume runs/dnc_TMaze-v0_dnc_s1_20261201-010203
    torchrun --nproc_per_node=2 -m training.ppo ...  # data-parallel over processes

Same config format, flags, run folders, TensorBoard, checkpoints, resume, torchrun,
evaluation and export as ``training.a2c`` (the loop around the update is
``training/runner.py``; collection, GAE and replay are ``training/rollout.py``).

One update per rollout, top to bottom:

1. GAE(λ) with the collecting policy's values; value targets = advantages + values.
2. The rollout cut into sequences of ``bptt`` steps per env, each with the recurrent
   state the rollout really had at its first step (stored at collection).
3. ``update_epochs`` epochs; each shuffles the sequences into ``num_minibatches``
   minibatches of whole sequences (every valid step exactly once per epoch) and, for
   each, replays them with gradients from their stored start states (reset mask at
   every step), so the first minibatch of the first epoch reproduces the rollout's
   log-probs and values exactly (ratio 1).
4. :func:`ppo_loss`: advantages optionally normalised per minibatch over valid rows
   (``normalize_advantages``, off by default); clipped
   surrogate ``max(-A r, -A clip(r, 1 ± ε))``; value loss, clipped around the old value
   when ``clip_value`` > 0; entropy bonus; gradient norm clipped.
5. Early stop of the epochs once the approximate KL (``mean((r - 1) - log r)``, pooled
   over processes) exceeds ``target_kl`` (when > 0).

The stored start states are not refreshed between epochs: later epochs replay from the
memory the collecting weights produced, as sb3-contrib's RecurrentPPO and CleanRL's
``ppo_atari_lstm.py`` do.
"""

from __future__ import annotations

import torch
from torch import Tensor

from training.config import ConfigError, TrainConfig
from training.rollout import (Rollout, Sequences, masked_mean, minibatches, normalize, replay,
                              rollout_advantages, to_sequences)
from training.runner import Learner, cli
from training.runner import train as _train


def ppo_loss(logp: Tensor, entropy: Tensor, value: Tensor, seq: Sequences,
             cfg: TrainConfig, clip: float) -> tuple[Tensor, dict]:
    """The PPO loss over the valid rows of a minibatch of replayed sequences (``[S, L]``
    each: the replay's log-probs, entropies and values, and the stored rollout ``seq``)."""
    valid = seq.valid
    adv = normalize(seq.advantages, valid) if cfg.normalize_advantages else seq.advantages
    log_ratio = (logp - seq.logp) * valid
    ratio = log_ratio.exp()
    surrogate = torch.maximum(-adv * ratio, -adv * ratio.clamp(1.0 - clip, 1.0 + clip))
    policy_loss = masked_mean(surrogate, valid)
    value_err = (value - seq.returns) ** 2
    if cfg.clip_value > 0:
        clipped = seq.value + (value - seq.value).clamp(-cfg.clip_value, cfg.clip_value)
        value_err = torch.maximum(value_err, (clipped - seq.returns) ** 2)
    value_loss = 0.5 * masked_mean(value_err, valid)
    ent = masked_mean(entropy, valid)
    loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * ent
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, valid)
        clip_frac = masked_mean(((ratio - 1.0).abs() > clip).float(), valid)
    return loss, {"losses/policy": policy_loss.item(), "losses/value": value_loss.item(),
                  "losses/entropy": ent.item(), "losses/approx_kl": approx_kl.item(),
                  "losses/clip_frac": clip_frac.item()}


def ppo_update(learner: Learner, r: Rollout) -> dict:
    """``update_epochs`` epochs of minibatch steps on one rollout."""
    cfg = learner.cfg
    clip = cfg.clip_coef * (1.0 - learner.progress if cfg.clip_schedule == "linear" else 1.0)
    clip = max(clip, 1e-3)
    seq = to_sequences(r, rollout_advantages(r, cfg.gamma, cfg.gae_lambda))
    totals: dict[str, float] = {}
    steps, epochs = 0, 0
    for _ in range(cfg.update_epochs):
        kls = []
        for idx in minibatches(len(seq), cfg.num_minibatches):
            mb = seq.select(idx)
            logp, entropy, value = replay(learner.model, learner.policy, mb)
            loss, parts = ppo_loss(logp, entropy, value, mb, cfg, clip)
            parts["losses/grad_norm"] = learner.step(loss)
            kls.append(parts["losses/approx_kl"])
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v
            steps += 1
        epochs += 1
        if cfg.target_kl > 0 and learner.all_mean(sum(kls) / len(kls)) > cfg.target_kl:
            break
    out = {k: v / steps for k, v in totals.items()}
    out.update({"losses/epochs": float(epochs), "losses/clip_coef": clip})
    return out


def train(cfg: TrainConfig, resume=None, progress: bool = True, run_dir=None) -> dict:
    """Train with PPO; ``resume``: a run folder or a checkpoint (see
    :func:`training.runner.train` for where it continues and what it returns)."""
    if cfg.algo != "ppo":
        raise ConfigError(f"algo: this config is for {cfg.algo!r}; use training.{cfg.algo} "
                          f"or set algo=ppo")
    return _train(cfg, ppo_update, resume=resume, progress=progress, run_dir=run_dir)


def main(argv=None) -> dict:
    return cli("ppo", ppo_update, __doc__, argv)


if __name__ == "__main__":
    main()
