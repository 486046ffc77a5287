#!/usr/bin/env bash
# Our PPO on dnc/CartPolePO-v0 with normalize_rewards (LSTM 79), 100k steps, seeds 1-3, one
# job beside the maze study, from a worktree at 1b7bf9e
cd /tmp/s30/wt2
export PYTHONPATH=/tmp/s30/wt2
/work/main/.venv/bin/python -m training.compare --tasks ppo_cartpole_po --cores lstm-rnorm \
    --seeds 3 --budget 100000 --jobs 1 --compile \
    --runs-dir /tmp/s30/runs --out /tmp/s30/out_cartpole_rnorm
