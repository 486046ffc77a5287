#!/usr/bin/env bash
# Issues 11/12: PPO throughput with the replay compiled 8 steps per graph, side by side
# with the per-step compiled DNC, our LSTM and GRU and sb3-contrib's RecurrentPPO; alone
# on the machine, one thread, from a worktree at the commit named in the output's header
cd /tmp/s34/wtb
export PYTHONPATH=/tmp/s34/wtb
/work/main/.venv/bin/python -m training.bench --algos ppo --threads 1 --repeats 3 --updates 10 --warmup 2 --variants "DNC (compile),DNC (compile chunk 8),LSTM (eager),GRU (eager)" --sb3-python /tmp/sb3venv/bin/python > /tmp/s34/bench.txt 2> /tmp/s34/bench.err
echo $? > /tmp/s34/bench.rc
