#!/bin/bash
# issue 11: PPO's default DNC on CartPolePO with two tanh layers of 64 per head
# (ppo_cartpole_po_dnc-head2.yaml), from a worktree at 86d6e7e; waits for the issue 12 study.
while [ ! -f /tmp/s36/mn.rc ]; do sleep 30; done
cd /tmp/s36/wt2
export PYTHONPATH=/tmp/s36/wt2
PY=/work/main/.venv/bin/python
$PY -m training.compare --tasks ppo_cartpole_po --cores dnc-head2 --seeds 3 --budget 100000 \
    --jobs 1 --compile --runs-dir /tmp/s36/cpruns --out /tmp/s36/out_cp \
    --baseline ppo_cartpole_po=docs/results/issue11_cartpole_rnorm/recurrent_ppo_cartpole_po_normalize.jsonl \
    > /tmp/s36/cp.log 2>&1
echo $? > /tmp/s36/cp.rc
