#!/bin/bash
# issue 11/12: MemoryNav with a shorter memory gap: a 2 m arena (the default is 4 m),
# goal shown for the default 3 steps; our PPO's GRU 91 and default DNC side by side,
# 200k steps, seed 1; from a worktree at d3742e5.
cd /tmp/s36/wt3
export PYTHONPATH=/tmp/s36/wt3
PY=/work/main/.venv/bin/python
COMMON="--seed 1 --no-progress --set threads=1 --set stop_at_success=0 --set log_every=1 --set compile=true"
for core in gru dnc-dealloc; do
  ($PY -m training.ppo --config training/configs/ppo_memorynav_$core.yaml $COMMON \
      --set 'env_kwargs={"arena_size": 2.0}' --set run_dir=/tmp/s36/small/$core \
      > /tmp/s36/small_$core.log 2>&1; echo $? > /tmp/s36/small_$core.rc) &
done
wait
echo done > /tmp/s36/small.rc
