#!/usr/bin/env bash
# Issue 11: dnc-h79 on CartPolePO, 3 seeds, 100k steps each, compiled, one job, alone on
# the machine, from a worktree at the commit in each run's code_version.txt
cd /tmp/s34/wt
export PYTHONPATH=/tmp/s34/wt
/work/main/.venv/bin/python -m training.compare --tasks ppo_cartpole_po --cores dnc-h79 \
    --seeds 3 --budget 100000 --compile --jobs 1 --runs-dir /tmp/s34/runs \
    --out /tmp/s34/out_h79 > /tmp/s34/h79.log 2>&1
echo $? > /tmp/s34/h79.rc
