#!/usr/bin/env bash
# Part 2: the GRU, 5 seeds, 200k steps, two jobs once part 1 and the CartPolePO rows are
# done (DNC-MDS not run: the cores went to CartPolePO's rows first)
cd /tmp/s31/wt4
export PYTHONPATH=/tmp/s31/wt4
until [ -f /tmp/s31/mn5a.rc ] && [ -f /tmp/s31/dnchead.rc ]; do sleep 10; done
/work/main/.venv/bin/python -m training.compare --tasks ppo_memorynav --cores gru --seeds 5 \
    --budget 200000 --jobs 2 --compile --runs-dir /tmp/s31/runs --out /tmp/s31/out_mn5b
