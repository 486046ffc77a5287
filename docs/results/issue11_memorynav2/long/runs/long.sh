#!/bin/bash
# issue 11: MemoryNav in a 2 m arena at three times the budget (600k env steps), seed 1:
# our PPO's GRU 91 and default DNC (each as training.compare runs them) and sb3-contrib's
# RecurrentPPO, the three side by side; from a worktree at 67e10f8.
cd /tmp/s37/wt
export PYTHONPATH=/tmp/s37/wt
PY=/work/main/.venv/bin/python
(/tmp/sb3venv/bin/python -m training.baseline_sb3 --env dnc/MemoryNav-v0 \
    --env-kwargs '{"arena_size": 2.0}' --seeds 1 --total-steps 600000 --threads 1 \
    --out /tmp/s37/long/recurrent_ppo_memorynav2_600k.jsonl > /tmp/s37/long_sb3.log 2>&1; \
 echo $? > /tmp/s37/long_sb3.rc) &
for core in gru dnc-dealloc; do
  ($PY -m training.ppo --config training/configs/ppo_memorynav2_$core.yaml --seed 1 \
      --total-steps 600000 --no-progress --set threads=1 --set stop_at_success=0 \
      --set log_every=1 --set compile=true --set run_dir=/tmp/s37/long/$core \
      > /tmp/s37/long_$core.log 2>&1; echo $? > /tmp/s37/long_$core.rc) &
done
wait
echo done > /tmp/s37/long.rc
