#!/bin/bash
# Issue 16 measurements on a quiet machine, one after another.
cd /work/main
export PYTHONPATH=/work/main:/work/main/ros2_ws/src/dnc_policy:/work/main/ros2_ws/src/dnc_policy_tools
M=/tmp/s26/alloc_run/dnc_TMaze-v0_dnc_s1_20261203-063544/policy.onnx
O=/tmp/s26/b16
mkdir -p $O
uptime > $O/uptime_start.txt
.venv/bin/python -m export.bench $M --options --steps 5000 > $O/options.txt 2>&1
.venv/bin/python -m export.bench $M --profile 2000 > $O/profile.txt 2>&1
.venv/bin/python -m export.bench $M --steps 5000 > $O/bench.txt 2>&1
for ex in single_threaded events; do
  .venv/bin/python -m dnc_policy_tools.bench $M --duration 20 --executor $ex --json $O/ros_$ex.json > $O/ros_$ex.txt 2>&1
done
for ex in single_threaded events; do
  .venv/bin/python -m dnc_policy_tools.bench $M --duration 15 --hog 1 --depth 1 --executor $ex --json $O/hog_$ex.json > $O/hog_$ex.txt 2>&1
done
uptime > $O/uptime_end.txt
echo done > $O/done
