#!/bin/bash
# issue 11: MemoryNav in a 2 m arena (ppo_memorynav2_*), 5 seeds, 200k steps: our PPO's
# default DNC and GRU 91 (two runs at a time, compiled), then sb3-contrib's RecurrentPPO
# (RL-Zoo settings) on the same env, seeds 1-3 and 4-5 side by side; from a worktree at 67e10f8.
cd /tmp/s37/wt
export PYTHONPATH=/tmp/s37/wt
PY=/work/main/.venv/bin/python
$PY -m training.compare --tasks ppo_memorynav2 --cores dnc-dealloc,gru --seeds 5 \
    --budget 200000 --jobs 2 --compile --runs-dir /tmp/s37/runs --out /tmp/s37/out \
    > /tmp/s37/compare.log 2>&1
echo $? > /tmp/s37/compare.rc
for s in 1,2,3 4,5; do
  (/tmp/sb3venv/bin/python -m training.baseline_sb3 --env dnc/MemoryNav-v0 \
      --env-kwargs '{"arena_size": 2.0}' --seeds $s --total-steps 200000 --threads 1 \
      --out /tmp/s37/rppo_$s.jsonl > /tmp/s37/sb3_$s.log 2>&1; echo $? > /tmp/s37/sb3_$s.rc) &
done
wait
cat /tmp/s37/rppo_1,2,3.jsonl /tmp/s37/rppo_4,5.jsonl > /tmp/s37/recurrent_ppo_memorynav2.jsonl
$PY -m training.compare --tasks ppo_memorynav2 --cores dnc-dealloc,gru --seeds 5 \
    --budget 200000 --no-train --runs-dir /tmp/s37/runs --out /tmp/s37/out \
    --baseline ppo_memorynav2=/tmp/s37/recurrent_ppo_memorynav2.jsonl > /tmp/s37/table.log 2>&1
echo $? > /tmp/s37/table.rc
echo done > /tmp/s37/study.rc
