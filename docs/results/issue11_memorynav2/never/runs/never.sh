#!/bin/bash
# issue 11/12: MemoryNav's blind control in the 2 m arena (show_goal="never": the goal is
# never observed), our PPO's GRU 91 and default DNC side by side, 200k steps, seed 1, as
# training.compare runs them; from a worktree at 794ad7c, after the 600k runs.
while [ ! -f /tmp/s37/long.rc ]; do sleep 20; done
cd /tmp/s37/wt2
export PYTHONPATH=/tmp/s37/wt2
PY=/work/main/.venv/bin/python
for core in gru dnc-dealloc; do
  ($PY -m training.ppo --config training/configs/ppo_memorynav2_$core.yaml --seed 1 \
      --no-progress --set threads=1 --set stop_at_success=0 --set log_every=1 \
      --set compile=true --set 'env_kwargs={"arena_size": 2.0, "show_goal": "never"}' \
      --set run_dir=/tmp/s37/never/$core > /tmp/s37/never_$core.log 2>&1
   echo $? > /tmp/s37/never_$core.rc) &
done
wait
echo done > /tmp/s37/never.rc
