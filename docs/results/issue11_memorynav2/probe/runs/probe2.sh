#!/bin/bash
# issue 11: the MemoryNav (2 m) decline again, two more of RecurrentPPO's differences,
# one each: a separate critic GRU (sb3-contrib's default has a separate critic LSTM) and
# no observation normalisation (training.baseline_sb3 runs RecurrentPPO without one); the
# GRU 91, 600k steps, seed 1, side by side; from a worktree at 67e10f8.
cd /tmp/s37/wt
export PYTHONPATH=/tmp/s37/wt
PY=/work/main/.venv/bin/python
run() {  # name, --set ...
  name=$1; shift
  $PY -m training.ppo --config training/configs/ppo_memorynav2_gru.yaml --seed 1 \
      --total-steps 600000 --no-progress --set threads=1 --set stop_at_success=0 \
      --set log_every=1 --set compile=true --set run_dir=/tmp/s37/probe2/$name "$@" \
      > /tmp/s37/probe2_$name.log 2>&1
  echo $? > /tmp/s37/probe2_$name.rc
}
run critic --set separate_critic=true &
run rawobs --set normalize_obs=false &
wait
echo done > /tmp/s37/probe2.rc
