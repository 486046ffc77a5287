#!/usr/bin/env bash
# One-seed probes on dnc/CartPolePO-v0 on top of the lstm-rnorm config: the RL Zoo's 8 envs
# (GAE lambda 0.98 kept: 0.8 ended lower, probe gae_lambda_0.8), then the DNC with
# normalize_rewards; 100k steps, seed 1, from a worktree at 1b7bf9e
cd /tmp/s30/wt2
export PYTHONPATH=/tmp/s30/wt2
PY=/work/main/.venv/bin/python
COMMON="--seed 1 --no-progress --set threads=1 --set stop_at_success=0 --set log_every=1 --set compile=true"
$PY -m training.ppo --config training/configs/ppo_cartpole_po_lstm-rnorm.yaml $COMMON \
    --set num_envs=8 --set run_dir=/tmp/s30/probe/num_envs_8
$PY -m training.ppo --config training/configs/ppo_cartpole_po_dnc-rnorm.yaml $COMMON \
    --set run_dir=/tmp/s30/probe/dnc_rnorm
