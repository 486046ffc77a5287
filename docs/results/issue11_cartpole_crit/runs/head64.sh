#!/usr/bin/env bash
# Our PPO on dnc/CartPolePO-v0, lstm-head64 (lstm-rnorm with a tanh layer of 64 in each
# head), 100k steps, seeds 1-3, one job, after rppo.sh, from a worktree at the commit below
cd /tmp/s31/wt7
export PYTHONPATH=/tmp/s31/wt7
until [ -f /tmp/s31/rppo.rc ]; do sleep 10; done
/work/main/.venv/bin/python -m training.compare --tasks ppo_cartpole_po --cores lstm-head64 \
    --seeds 3 --budget 100000 --jobs 1 --compile \
    --runs-dir /tmp/s31/runs --out /tmp/s31/out_head64
