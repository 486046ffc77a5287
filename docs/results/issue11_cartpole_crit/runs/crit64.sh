#!/usr/bin/env bash
# Our PPO on dnc/CartPolePO-v0 with RecurrentPPO's network (lstm-crit64), 100k steps, seeds
# 1-3, then a one-seed probe of the head layer alone (lstm-rnorm with head_hidden 64, one
# shared LSTM of 79); one job, after the lstm-rnclip rows, from a worktree at the commit below
cd /tmp/s31/wt5
export PYTHONPATH=/tmp/s31/wt5
PY=/work/main/.venv/bin/python
until [ -f /tmp/s31/rnclip.rc ]; do sleep 10; done
$PY -m training.compare --tasks ppo_cartpole_po --cores lstm-crit64 \
    --seeds 3 --budget 100000 --jobs 1 --compile \
    --runs-dir /tmp/s31/runs --out /tmp/s31/out_crit64
$PY -m training.ppo --config training/configs/ppo_cartpole_po_lstm-rnorm.yaml --seed 1 \
    --no-progress --set threads=1 --set stop_at_success=0 --set log_every=1 --set compile=true \
    --set head_hidden=64 --set run_dir=/tmp/s31/probe/head64
