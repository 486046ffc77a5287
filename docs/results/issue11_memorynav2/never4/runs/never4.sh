#!/bin/bash
# issue 11/12: the blind control in the default 4 m arena (show_goal="never"), 200k steps,
# seed 1: our PPO's GRU 91 and default DNC (the MemoryNav rows' configs) and RecurrentPPO,
# the three side by side; from a worktree at 794ad7c.
cd /tmp/s37/wt2
export PYTHONPATH=/tmp/s37/wt2
PY=/work/main/.venv/bin/python
(/tmp/sb3venv/bin/python -m training.baseline_sb3 --env dnc/MemoryNav-v0 \
    --env-kwargs '{"show_goal": "never"}' --seeds 1 --total-steps 200000 --threads 1 \
    --out /tmp/s37/never4/recurrent_ppo_memorynav_never.jsonl > /tmp/s37/never4_sb3.log 2>&1; \
 echo $? > /tmp/s37/never4_sb3.rc) &
for core in gru dnc-dealloc; do
  ($PY -m training.ppo --config training/configs/ppo_memorynav_$core.yaml --seed 1 \
      --no-progress --set threads=1 --set stop_at_success=0 --set log_every=1 \
      --set compile=true --set 'env_kwargs={"show_goal": "never"}' \
      --set run_dir=/tmp/s37/never4/$core > /tmp/s37/never4_$core.log 2>&1
   echo $? > /tmp/s37/never4_$core.rc) &
done
wait
echo done > /tmp/s37/never4.rc
