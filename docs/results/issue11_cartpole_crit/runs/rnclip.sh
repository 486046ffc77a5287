#!/usr/bin/env bash
# Our PPO on dnc/CartPolePO-v0, lstm-rnclip (lstm-rnorm with the clip range linear),
# 100k steps, seeds 1-3, one job, after the one-seed probes, from a worktree at the commit below
cd /tmp/s31/wt4
export PYTHONPATH=/tmp/s31/wt4
until [ -f /tmp/s31/probe4.rc ]; do sleep 10; done
/work/main/.venv/bin/python -m training.compare --tasks ppo_cartpole_po --cores lstm-rnclip \
    --seeds 3 --budget 100000 --jobs 1 --compile \
    --runs-dir /tmp/s31/runs --out /tmp/s31/out_rnclip
