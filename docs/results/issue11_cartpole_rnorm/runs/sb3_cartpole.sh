#!/usr/bin/env bash
# sb3-contrib RecurrentPPO on dnc/CartPolePO-v0, 100k steps, seeds 1-3, with VecNormalize
# (the RL Zoo's normalize: True for CartPoleNoVel), from a worktree at 1b7bf9e
cd /tmp/s30/wt2
PYTHONPATH=. /tmp/sb3venv/bin/python -m training.baseline_sb3 --env dnc/CartPolePO-v0 \
    --env-kwargs '{}' --seeds 1,2,3 --total-steps 100000 --normalize \
    --out /tmp/s30/sb3/recurrent_ppo_cartpole_po_normalize.jsonl
