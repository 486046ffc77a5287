#!/bin/bash
# issue 11/12: MemoryNav with the goal offset observed at every step (show_goal=always,
# the driving task without its memory demand), 200k steps, seed 1: RecurrentPPO (RL-Zoo
# settings) beside our PPO's GRU and default DNC rows; from a worktree at d3742e5, after
# the CartPolePO runs.
while [ ! -f /tmp/s36/cp.rc ]; do sleep 20; done
cd /tmp/s36/wt3
export PYTHONPATH=/tmp/s36/wt3
PY=/work/main/.venv/bin/python
(/tmp/sb3venv/bin/python -m training.baseline_sb3 --env dnc/MemoryNav-v0 \
    --env-kwargs '{"show_goal": "always"}' --seeds 1 --total-steps 200000 --threads 1 \
    --out /tmp/s36/vis/recurrent_ppo_memorynav_always.jsonl > /tmp/s36/vis_sb3.log 2>&1; \
 echo $? > /tmp/s36/vis_sb3.rc) &
COMMON="--seed 1 --no-progress --set threads=1 --set stop_at_success=0 --set log_every=1 --set compile=true"
for core in gru dnc-dealloc; do
  $PY -m training.ppo --config training/configs/ppo_memorynav_$core.yaml $COMMON \
      --set 'env_kwargs={"show_goal": "always"}' --set run_dir=/tmp/s36/vis/$core \
      > /tmp/s36/vis_$core.log 2>&1
  echo $? > /tmp/s36/vis_$core.rc
done
wait
echo done > /tmp/s36/vis.rc
