cd /tmp/s31/wt   # a worktree at cb17cd3
export PYTHONPATH=/tmp/s31/wt
/work/main/.venv/bin/python -m training.compare --tasks ppo_memorynav --cores gru-ctx --seeds 1 --budget 1000000 \
    --jobs 1 --compile --runs-dir /tmp/s31/runs --out /tmp/s31/out_mn
