#!/bin/bash
# issue 12: the long-horizon rows the study lacked (from a worktree at aa69877).
# Only the first compare (the T-maze of 100) ran from this script: it was stopped while
# that one ran, and the rest was queued in docs/results/issue11_dealloc/runs/study3.sh,
# in another order and with PPO's default DNC in place of DNC-MDS on MemoryNav.
cd /tmp/s35/wt
export PYTHONPATH=/tmp/s35/wt
PY=/work/main/.venv/bin/python
$PY -m training.compare --tasks ppo_tmaze100 --cores ntm,dnc-2016 --seeds 5 --budget 200000 \
    --jobs 2 --compile --runs-dir /tmp/s35/runs --out /tmp/s35/out_t100 > /tmp/s35/t100.log 2>&1
echo $? > /tmp/s35/t100.rc
$PY -m training.compare --tasks ppo_maze --cores ntm --seeds 5 --budget 200000 --threshold 0.5 \
    --eval-trials --jobs 2 --compile --runs-dir /tmp/s35/runs --out /tmp/s35/out_maze > /tmp/s35/maze.log 2>&1
echo $? > /tmp/s35/maze.rc
$PY -m training.compare --tasks ppo_memorynav --cores dnc-mds --seeds 5 --budget 200000 \
    --jobs 2 --compile --runs-dir /tmp/s35/runs --out /tmp/s35/out_mn > /tmp/s35/mn.log 2>&1
echo $? > /tmp/s35/mn.rc
