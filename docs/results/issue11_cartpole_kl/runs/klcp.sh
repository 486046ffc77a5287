#!/usr/bin/env bash
# Issue 11: target_kl 0.02 on CartPolePO (dnc-head64 + KL stop) beside dnc-head64, 3 seeds, 100k steps,
# compiled, one job, alone on the machine, from a worktree at the commit in each run's
# code_version.txt
cd /tmp/s34/wtk
export PYTHONPATH=/tmp/s34/wtk
/work/main/.venv/bin/python -m training.compare --tasks ppo_cartpole_po --cores dnc-head64,dnc-kl \
    --seeds 3 --budget 100000 --compile --jobs 1 --runs-dir /tmp/s34/klcpruns \
    --out /tmp/s34/out_klcp > /tmp/s34/klcp.log 2>&1
echo $? > /tmp/s34/klcp.rc
