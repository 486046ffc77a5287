#!/usr/bin/env bash
# Issue 12: POPGym CountRecallEasy, the default DNC and parameter-matched LSTM and GRU,
# 5 seeds, 200k steps, one job, alone on the machine, from a worktree at the commit in
# each run's code_version.txt
cd /tmp/s33/wt
export PYTHONPATH=/tmp/s33/wt
/work/main/.venv/bin/python -m training.compare --tasks ppo_countrecall --cores dnc,lstm,gru \
    --seeds 5 --budget 200000 --jobs 1 --compile --runs-dir /tmp/s33/runs --out /tmp/s33/out_cr \
    > /tmp/s33/cr.log 2>&1
echo $? > /tmp/s33/cr.rc
