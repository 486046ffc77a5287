#!/usr/bin/env bash
# Issue 11: the replay compiled 32 steps per graph (a whole sequence) beside 8 and
# sb3-contrib's RecurrentPPO; alone on the machine, one thread
cd /tmp/s34/wtb
export PYTHONPATH=/tmp/s34/wtb
/work/main/.venv/bin/python -m training.bench --algos ppo --threads 1 --repeats 3 --updates 10 --warmup 2 --variants "DNC (compile chunk 8),DNC (compile chunk 32),LSTM (eager)" --sb3-python /tmp/sb3venv/bin/python > /tmp/s34/bench32.txt 2> /tmp/s34/bench32.err
echo $? > /tmp/s34/bench32.rc
