#!/bin/bash
# issue 12: the long-horizon rows still missing (from a worktree at d68454b):
# DNC-MDS on the fixed T-maze of 100, then the NTM and DNC-MDS on MemoryNav.
cd /tmp/s36/wt
export PYTHONPATH=/tmp/s36/wt
PY=/work/main/.venv/bin/python
$PY -m training.compare --tasks ppo_tmaze100 --cores dnc-mds --seeds 5 --budget 200000 \
    --jobs 2 --compile --runs-dir /tmp/s36/runs --out /tmp/s36/out_t100 > /tmp/s36/t100.log 2>&1
echo $? > /tmp/s36/t100.rc
$PY -m training.compare --tasks ppo_memorynav --cores ntm,dnc-mds --seeds 5 --budget 200000 \
    --jobs 2 --compile --runs-dir /tmp/s36/runs --out /tmp/s36/out_mn > /tmp/s36/mn.log 2>&1
echo $? > /tmp/s36/mn.rc
