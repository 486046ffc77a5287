#!/usr/bin/env bash
# LSTM and GRU on the fixed T-maze of 100 with bptt_context 128, 200k steps, 5 seeds,
# from a worktree at 57c63a1: the LSTM once the DNC-ctx study has one core free, the
# GRU once it has ended (two trainers at a time in all).
cd /tmp/s29/wt3
export PYTHONPATH=/tmp/s29/wt3
PY=/work/main/.venv/bin/python
until [ -d /tmp/s29/runs_ctx/ppo_tmaze100/dnc-ctx/seed5 ]; do sleep 10; done
$PY -m training.compare --tasks ppo_tmaze100 --cores lstm-ctx --seeds 5 --budget 200000 \
    --jobs 1 --compile --runs-dir /tmp/s29/runs_ctx --out /tmp/s29/out_ctx_lstm \
    > /tmp/s29/ctx_lstm.log 2>&1 &
until [ -f /tmp/s29/ctx.rc ]; do sleep 10; done
$PY -m training.compare --tasks ppo_tmaze100 --cores gru-ctx --seeds 5 --budget 200000 \
    --jobs 1 --compile --runs-dir /tmp/s29/runs_ctx --out /tmp/s29/out_ctx_gru \
    > /tmp/s29/ctx_gru.log 2>&1
wait
