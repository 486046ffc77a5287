#!/usr/bin/env bash
# The DNC on the fixed T-maze of 100 with bptt_context 128, 200k steps, 5 seeds (as the
# 200k rows of issue12.md), from a worktree at aaa8fc4; two jobs (the 2M study paused)
cd /tmp/s29/wt2
export PYTHONPATH=/tmp/s29/wt2
/work/main/.venv/bin/python -m training.compare --tasks ppo_tmaze100 --cores dnc-ctx \
    --seeds 5 --budget 200000 --jobs 2 --compile \
    --runs-dir /tmp/s29/runs_ctx --out /tmp/s29/out_ctx
