#!/usr/bin/env bash
# One-seed probes on dnc/CartPolePO-v0 after the lstm-rnorm rows: the RL Zoo's GAE lambda
# (0.8) and its 8 envs, each on top of lstm-rnorm, 100k steps, seed 1, from a worktree at 1b7bf9e
cd /tmp/s30/wt2
export PYTHONPATH=/tmp/s30/wt2
until [ -f /tmp/s30/cartpole_rnorm.rc ]; do sleep 10; done
for probe in "gae_lambda=0.8" "gae_lambda=0.8 num_envs=8"; do
  name=$(echo "$probe" | tr ' =' '__')
  sets=""; for s in $probe; do sets="$sets --set $s"; done
  /work/main/.venv/bin/python -m training.ppo --config training/configs/ppo_cartpole_po_lstm-rnorm.yaml \
      --seed 1 --no-progress --set threads=1 --set stop_at_success=0 --set log_every=1 \
      --set compile=true $sets --set run_dir=/tmp/s30/probe/$name
done
