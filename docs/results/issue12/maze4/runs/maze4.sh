#!/bin/bash
# issue 12, session 38: the fast-adaptation maze at 4 x 4 (code 9b87170)
cd /tmp/s38/wt4
export PYTHONPATH=/tmp/s38/wt4
/work/main/.venv/bin/python -m training.compare --tasks ppo_maze4 --cores dnc-mds,gru --seeds 3 \
    --budget 300000 --threshold 0.5 --eval-trials --jobs 2 --compile \
    --runs-dir /tmp/s38/runs --out /tmp/s38/out_maze4
