#!/usr/bin/env bash
# Issue 12: a one-seed probe of the Copy task (6 bits, 1-10 vectors), DNC and LSTM, 300k steps,
# one job, from a worktree at the commit in each run's code_version.txt
cd /tmp/s33/wt
export PYTHONPATH=/tmp/s33/wt
/work/main/.venv/bin/python -m training.compare --tasks ppo_copy --cores dnc,lstm --seeds 1 --compile --jobs 1 --stop-at-threshold \
    --out /tmp/s33/probe_out --runs-dir /tmp/s33/probe_runs > /tmp/s33/probe.log 2>&1
echo $? > /tmp/s33/probe.rc
