"""Synchronous A2C with GAE(λ) for recurrent (DNC / LSTM / GRU) policies.

    python -m training.a2c                          # embedded default: DNC on the T-maze
    python -m training.a2c --config training/configs/maze_dnc.yaml --set lr=5e-4
    python -m training.a2c --env CartPole-v1 --core lstm --total-steps 100000
    python -m training.a2c --resume runs/dnc_TMaze-v0_dnc_s1_20261122-010203
    torchrun --nproc_per_node=2 -m training.a2c ...  # data-parallel over processes

One update per rollout, top to bottom (the loop around it, shared with
``training.ppo``, is ``training/runner.py``; collection, GAE and the replay are
``training/rollout.py``):

1. GAE(λ) over the rollout (:func:`compute_gae`): terminations bootstrap 0,
   truncations bootstrap V(final observation) under the carried memory, episode ends
   cut the λ-chain, NEXT_STEP autoreset rows get no advantage.
2. Replay the rollout with gradients as sequences of ``bptt`` steps per env, each from
   the state the rollout had at its start, resets applied at every step.
3. :func:`a2c_loss` over the valid rows: policy gradient with advantages (optionally
   normalised over the valid rows: ``normalize_advantages``, off by default), value loss,
   entropy bonus.
4. One gradient step, gradient norm clipped to ``max_grad_norm``.
"""

from __future__ import annotations

from torch import Tensor

from training.config import ConfigError, TrainConfig
from training.rollout import (Rollout, Sequences, masked_mean, normalize, replay,
                              rollout_advantages, to_sequences)
from training.runner import Learner, cli
from training.runner import train as _train


def a2c_loss(logp: Tensor, entropy: Tensor, value: Tensor, seq: Sequences,
             cfg: TrainConfig) -> tuple[Tensor, dict]:
    """The A2C loss over the valid rows of replayed sequences (``[S, L]`` each: the
    replay's log-probs, entropies and values, and the stored rollout ``seq``)."""
    adv = normalize(seq.advantages, seq.valid) if cfg.normalize_advantages else seq.advantages
    policy_loss = -masked_mean(adv * logp, seq.valid)
    value_loss = 0.5 * masked_mean((seq.returns - value) ** 2, seq.valid)
    ent = masked_mean(entropy, seq.valid)
    loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * ent
    return loss, {"losses/policy": policy_loss.item(), "losses/value": value_loss.item(),
                  "losses/entropy": ent.item()}


def a2c_update(learner: Learner, r: Rollout) -> dict:
    """One A2C step on a rollout."""
    cfg = learner.cfg
    seq = to_sequences(r, rollout_advantages(r, cfg.gamma, cfg.gae_lambda))
    logp, entropy, value = replay(learner.model, learner.policy, seq)
    loss, parts = a2c_loss(logp, entropy, value, seq, cfg)
    parts["losses/grad_norm"] = learner.step(loss)
    return parts


def train(cfg: TrainConfig, resume=None, progress: bool = True, run_dir=None) -> dict:
    """Train with A2C; ``resume``: a run folder or a checkpoint (see
    :func:`training.runner.train` for where it continues and what it returns)."""
    if cfg.algo != "a2c":
        raise ConfigError(f"algo: this config is for {cfg.algo!r}; use training.{cfg.algo}")
    return _train(cfg, a2c_update, resume=resume, progress=progress, run_dir=run_dir)


def main(argv=None) -> dict:
    return cli("a2c", a2c_update, __doc__, argv)


if __name__ == "__main__":
    main()
