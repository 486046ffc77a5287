#!/bin/bash
# Issue 16: the policy node's round trip with one core kept busy (a CPU hog), paired
# across dropped observations by the bench's shadow replay (a Box-action model: the
# shipped default DNC, de-allocating, trained 512 steps on MemoryNav by PPO's default).
# Run alone on the machine, from the repository root: bash docs/results/issue16_load/bench_load.sh OUT
set -e
O=${1:?usage: bench_load.sh OUT}
mkdir -p "$O"
PY=${PY:-.venv/bin/python}
$PY -m training.ppo --env dnc/MemoryNav-v0 --set run_dir="$O/run" --total-steps 512 --no-progress > "$O/train.txt" 2>&1
M="$O/nav.onnx"
$PY -m export.onnx "$O"/run/*/checkpoints/latest.pt --out "$M" > "$O/export.txt" 2>&1
uptime > "$O/uptime_start.txt"
for rep in a b; do
  for ex in events single_threaded; do
    $PY -m dnc_policy_tools.bench "$M" --duration 15 --hog 1 --depth 1 --executor $ex --idle 0 \
      --json "$O/hog_${ex}_$rep.json" > "$O/hog_${ex}_$rep.txt" 2>&1
    $PY -m dnc_policy_tools.bench "$M" --duration 15 --depth 1 --executor $ex --idle 0 \
      --json "$O/quiet_${ex}_$rep.json" > "$O/quiet_${ex}_$rep.txt" 2>&1
  done
done
uptime > "$O/uptime_end.txt"
