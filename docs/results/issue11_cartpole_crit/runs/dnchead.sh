#!/usr/bin/env bash
# Our PPO on dnc/CartPolePO-v0, dnc-head64 (PPO's default DNC, rewards normalised, a tanh
# layer of 64 in each head), 100k steps, seeds 1-3, one job, after head64.sh, from a
# worktree at the commit below
cd /tmp/s31/wt8
export PYTHONPATH=/tmp/s31/wt8
until [ -f /tmp/s31/head64.rc ]; do sleep 10; done
/work/main/.venv/bin/python -m training.compare --tasks ppo_cartpole_po --cores dnc-head64 \
    --seeds 3 --budget 100000 --jobs 1 --compile \
    --runs-dir /tmp/s31/runs --out /tmp/s31/out_dnchead
