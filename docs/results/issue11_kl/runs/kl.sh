#!/usr/bin/env bash
# Issue 11 "stays >= 0.9": the default T-maze of 10, PPO's defaults against target_kl 0.02,
# 5 seeds, 50k steps, compiled, one job, alone on the machine, from a worktree at the
# commit in each run's code_version.txt
cd /tmp/s34/wt
export PYTHONPATH=/tmp/s34/wt
/work/main/.venv/bin/python -m training.compare --tasks ppo_tmaze10 --cores dnc,dnc-kl \
    --seeds 5 --budget 50000 --compile --jobs 1 --runs-dir /tmp/s34/klruns \
    --out /tmp/s34/out_kl > /tmp/s34/kl.log 2>&1
echo $? > /tmp/s34/kl.rc
