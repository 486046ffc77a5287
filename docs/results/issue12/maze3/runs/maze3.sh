#!/bin/bash
# issue 12, session 38: the study's 3 x 3 maze again (DNC-MDS, GRU), for the paired perfect memory (code f9df549)
cd /tmp/s38/wt3
export PYTHONPATH=/tmp/s38/wt3
/work/main/.venv/bin/python -m training.compare --tasks ppo_maze --cores dnc-mds,gru --seeds 5 \
    --budget 200000 --threshold 0.5 --eval-trials --jobs 2 --compile \
    --runs-dir /tmp/s38/runs --out /tmp/s38/out_maze3
