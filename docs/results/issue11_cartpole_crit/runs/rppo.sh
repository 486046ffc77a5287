#!/usr/bin/env bash
# Our PPO on dnc/CartPolePO-v0, lstm-rppo (RecurrentPPO's network and linear clip range),
# 100k steps, seeds 1-3, one job, after crit64.sh, from a worktree at the commit below
cd /tmp/s31/wt6
export PYTHONPATH=/tmp/s31/wt6
until [ -f /tmp/s31/crit64.rc ]; do sleep 10; done
/work/main/.venv/bin/python -m training.compare --tasks ppo_cartpole_po --cores lstm-rppo \
    --seeds 3 --budget 100000 --jobs 1 --compile \
    --runs-dir /tmp/s31/runs --out /tmp/s31/out_rppo
