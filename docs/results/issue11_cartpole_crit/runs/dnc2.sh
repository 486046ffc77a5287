#!/usr/bin/env bash
# Our PPO on dnc/CartPolePO-v0, dnc-hclip then dnc-crit64, 100k steps, seeds 1-3, one job,
# from a worktree at 99ff184
cd /tmp/s32/wt1
export PYTHONPATH=/tmp/s32/wt1
PY=/work/main/.venv/bin/python
$PY -m training.compare --tasks ppo_cartpole_po --cores dnc-hclip \
    --seeds 3 --budget 100000 --jobs 1 --compile \
    --runs-dir /tmp/s32/runs --out /tmp/s32/out_hclip > /tmp/s32/hclip.log 2>&1
echo $? > /tmp/s32/hclip.rc
$PY -m training.compare --tasks ppo_cartpole_po --cores dnc-crit64 \
    --seeds 3 --budget 100000 --jobs 1 --compile \
    --runs-dir /tmp/s32/runs --out /tmp/s32/out_crit64 > /tmp/s32/crit64.log 2>&1
echo $? > /tmp/s32/crit64.rc
