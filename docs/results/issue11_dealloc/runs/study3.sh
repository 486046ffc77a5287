#!/bin/bash
# issues 11 and 12: rows after the T-maze-100 study (from the worktree wt2; its commit: git -C /tmp/s35/wt2 log -1)
while kill -0 19418 2>/dev/null; do sleep 20; done
cd /tmp/s35/wt2
export PYTHONPATH=/tmp/s35/wt2
PY=/work/main/.venv/bin/python
$PY -m training.compare --tasks ppo_tmaze10 --cores dnc-dealloc,dnc-dealloc-kl --seeds 5 --budget 50000 \
    --jobs 2 --compile --runs-dir /tmp/s35/runs --out /tmp/s35/out_t10 > /tmp/s35/t10.log 2>&1
echo $? > /tmp/s35/t10.rc
$PY -m training.compare --tasks ppo_tmaze_matched --cores dnc-dealloc --seeds 5 --budget 60000 \
    --eval-lengths 5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,100,300,1000 --jobs 2 --compile --runs-dir /tmp/s35/runs --out /tmp/s35/out_len > /tmp/s35/len.log 2>&1
echo $? > /tmp/s35/len.rc
$PY -m training.compare --tasks ppo_maze --cores ntm --seeds 5 --budget 200000 --threshold 0.5 \
    --eval-trials --jobs 2 --compile --runs-dir /tmp/s35/runs --out /tmp/s35/out_maze > /tmp/s35/maze.log 2>&1
echo $? > /tmp/s35/maze.rc
$PY -m training.compare --tasks ppo_memorynav --cores dnc-dealloc --seeds 5 --budget 200000 \
    --jobs 2 --compile --runs-dir /tmp/s35/runs --out /tmp/s35/out_mn > /tmp/s35/mn.log 2>&1
echo $? > /tmp/s35/mn.rc
