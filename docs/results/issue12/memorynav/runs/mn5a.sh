#!/usr/bin/env bash
# Issue 12's long-horizon rows on MemoryNav, part 1: DNC and LSTM, 5 seeds, 200k steps,
# one job, after the GRU-ctx probe, from a worktree at the commit in each run's code_version.txt
cd /tmp/s31/wt4
export PYTHONPATH=/tmp/s31/wt4
until [ -f /tmp/s31/mn.rc ]; do sleep 10; done
/work/main/.venv/bin/python -m training.compare --tasks ppo_memorynav --cores dnc,lstm --seeds 5 \
    --budget 200000 --jobs 1 --compile --runs-dir /tmp/s31/runs --out /tmp/s31/out_mn5a
