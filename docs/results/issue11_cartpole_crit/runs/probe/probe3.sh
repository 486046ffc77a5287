#!/usr/bin/env bash
# One-seed probes on dnc/CartPolePO-v0 on top of the lstm-rnorm config, each one of the
# settings in which it still differs from sb3-contrib's RecurrentPPO baseline: advantages
# normalised per minibatch, the clip range linear to 0, the forget-gate bias 0, and
# RecurrentPPO's sizes with a separate critic (two LSTMs of 64, a tanh layer of 64 in
# each head); 100k steps, seed 1, from a worktree at 2e86bd8, after the lstm-crit rows
cd /tmp/s31/wt3
export PYTHONPATH=/tmp/s31/wt3
PY=/work/main/.venv/bin/python
until [ -f /tmp/s31/crit.rc ]; do sleep 10; done
COMMON="--seed 1 --no-progress --set threads=1 --set stop_at_success=0 --set log_every=1 --set compile=true"
CFG=training/configs/ppo_cartpole_po_lstm-rnorm.yaml
$PY -m training.ppo --config $CFG $COMMON --set normalize_advantages=true \
    --set run_dir=/tmp/s31/probe/normalize_advantages
$PY -m training.ppo --config $CFG $COMMON --set clip_schedule=linear \
    --set run_dir=/tmp/s31/probe/clip_linear
$PY -m training.ppo --config $CFG $COMMON --set core_config.forget_bias=0.0 \
    --set run_dir=/tmp/s31/probe/forget_bias_0
$PY -m training.ppo --config $CFG $COMMON --set core_config.hidden_size=64 \
    --set separate_critic=true --set head_hidden=64 --set run_dir=/tmp/s31/probe/crit64_head64
