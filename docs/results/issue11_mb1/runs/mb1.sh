#!/usr/bin/env bash
# Our PPO on the default T-maze of 10, DNC at PPO's defaults (20 epochs x 2 minibatches)
# and dnc-mb1 (1 minibatch), 50k steps, seeds 1-5, one job, from a worktree at c50a42e
cd /tmp/s32/wt2
export PYTHONPATH=/tmp/s32/wt2
/work/main/.venv/bin/python -m training.compare --tasks ppo_tmaze10 --cores dnc,dnc-mb1 \
    --seeds 5 --budget 50000 --jobs 1 --compile \
    --runs-dir /tmp/s32/runs --out /tmp/s32/out_mb1 > /tmp/s32/mb1.log 2>&1
echo $? > /tmp/s32/mb1.rc
