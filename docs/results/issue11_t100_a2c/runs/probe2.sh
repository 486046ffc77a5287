#!/bin/bash
cd /tmp/s28/wt
export PYTHONPATH=/tmp/s28/wt:/tmp/s28/wt/ros2_ws/src/dnc_policy:/tmp/s28/wt/ros2_ws/src/dnc_policy_tools
P=/work/main/.venv/bin/python
C='--set env_kwargs={"length":100,"bump_penalty":0.1} --set stop_at_success=0.98 --seed 1 --total-steps 600000 --set threads=1 --set log_every=1 --no-progress'
$P -m training.a2c --config training/configs/tmaze_gru.yaml $C --set rollout_steps=128 --set run_dir=/tmp/s28/pilot/gru128 > /tmp/s28/pilot_gru128.log 2>&1
$P -m training.a2c --config training/configs/a2c_tmaze10_dnc.yaml $C --set rollout_steps=256 --set run_dir=/tmp/s28/pilot/r256 > /tmp/s28/pilot_r256.log 2>&1
