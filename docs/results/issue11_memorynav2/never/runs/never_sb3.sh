#!/bin/bash
# issue 11/12: the blind control (show_goal="never", 2 m arena) for RecurrentPPO too,
# RL-Zoo settings, 200k steps, seed 1; from a worktree at 794ad7c, beside the GRU probes.
cd /tmp/s37/wt2
export PYTHONPATH=/tmp/s37/wt2
/tmp/sb3venv/bin/python -m training.baseline_sb3 --env dnc/MemoryNav-v0 \
    --env-kwargs '{"arena_size": 2.0, "show_goal": "never"}' --seeds 1 --total-steps 200000 \
    --threads 1 --out /tmp/s37/never/recurrent_ppo_memorynav2_never.jsonl \
    > /tmp/s37/never_sb3.log 2>&1
echo $? > /tmp/s37/never_sb3.rc
