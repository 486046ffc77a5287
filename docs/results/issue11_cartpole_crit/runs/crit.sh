cd /tmp/s31/wt3   # a worktree at 2e86bd8
export PYTHONPATH=/tmp/s31/wt3
/work/main/.venv/bin/python -m training.compare --tasks ppo_cartpole_po --cores lstm-crit --seeds 3 --budget 100000 \
    --jobs 1 --compile --runs-dir /tmp/s31/runs --out /tmp/s31/out_crit
