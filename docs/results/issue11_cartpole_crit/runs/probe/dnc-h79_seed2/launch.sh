#!/usr/bin/env bash
# Issue 11: a one-seed probe of dnc-h79 on CartPolePO (seed 2, dnc-head64's 344.3), 100k
# steps, alone on the machine, from a worktree at the commit in the run's code_version.txt
cd /tmp/s33/wt2
export PYTHONPATH=/tmp/s33/wt2
/work/main/.venv/bin/python -m training.ppo --config training/configs/ppo_cartpole_po_dnc-h79.yaml \
    --seed 2 --no-progress --set threads=1 --set stop_at_success=0 --set log_every=1 \
    --set compile=true --set run_dir=/tmp/s33/h79runs > /tmp/s33/h79.log 2>&1
echo $? > /tmp/s33/h79.rc
