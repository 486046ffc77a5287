#!/usr/bin/env bash
# ProceduralMaze (3x3, 3 trials) with bptt_context 32: DNC-MDS, LSTM and GRU, 200k steps,
# 5 seeds, fast adaptation evaluated (as maze_rnn and maze_dealloc), from a worktree at 80498f7
cd /tmp/s30/wt
export PYTHONPATH=/tmp/s30/wt
until [ -f /tmp/ci/rc ]; do sleep 10; done
/work/main/.venv/bin/python -m training.compare --tasks ppo_maze --cores dnc-mds-ctx,lstm-ctx,gru-ctx \
    --seeds 5 --budget 200000 --threshold 0.5 --eval-trials --jobs 2 --compile \
    --runs-dir /tmp/s30/runs --out /tmp/s30/out_maze_ctx
