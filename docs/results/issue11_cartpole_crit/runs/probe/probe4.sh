#!/usr/bin/env bash
# After probe3.sh: sb3's value-loss weight (its vf_coef 0.5 multiplies the MSE; ours
# multiplies half the MSE, as CleanRL does, so value_coef 1.0 is sb3's weight), on top of
# the lstm-rnorm config; 100k steps, seed 1, from the worktree at 2e86bd8
cd /tmp/s31/wt3
export PYTHONPATH=/tmp/s31/wt3
PY=/work/main/.venv/bin/python
until [ -f /tmp/s31/probe3.rc ]; do sleep 10; done
COMMON="--seed 1 --no-progress --set threads=1 --set stop_at_success=0 --set log_every=1 --set compile=true"
CFG=training/configs/ppo_cartpole_po_lstm-rnorm.yaml
$PY -m training.ppo --config $CFG $COMMON --set value_coef=1.0 \
    --set run_dir=/tmp/s31/probe/value_coef_1
