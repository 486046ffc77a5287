#!/bin/bash
cd /tmp/s28/wt
export PYTHONPATH=/tmp/s28/wt:/tmp/s28/wt/ros2_ws/src/dnc_policy:/tmp/s28/wt/ros2_ws/src/dnc_policy_tools
export OMP_NUM_THREADS=1
P=/work/main/.venv/bin/python
$P -m training.a2c --config training/configs/a2c_tmaze10_dnc.yaml --set 'env_kwargs={"length": 100, "bump_penalty": 0.1}' --set rollout_steps=128 --set stop_at_success=0.98 --seed 1 --total-steps 600000 --set threads=1 --set log_every=1 --set run_dir=/tmp/s28/pilot/r128 --no-progress > /tmp/s28/pilot_r128.log 2>&1 &
$P -m training.a2c --config training/configs/a2c_tmaze10_dnc.yaml --set 'env_kwargs={"length": 100, "bump_penalty": 0.1}' --set rollout_steps=32 --set stop_at_success=0.98 --seed 1 --total-steps 600000 --set threads=1 --set log_every=1 --set run_dir=/tmp/s28/pilot/r32 --no-progress > /tmp/s28/pilot_r32.log 2>&1 &
wait
