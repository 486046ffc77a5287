#!/bin/bash
# issue 12, session 38: the fast-adaptation maze with five trials (code 61e971d)
cd /tmp/s38/wt
export PYTHONPATH=/tmp/s38/wt
/work/main/.venv/bin/python -m training.compare --tasks ppo_maze5 --cores dnc-mds,gru --seeds 5 \
    --budget 200000 --threshold 0.5 --eval-trials --jobs 2 --compile \
    --runs-dir /tmp/s38/runs --out /tmp/s38/out_maze5
