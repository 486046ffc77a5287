#!/bin/bash
# issue 11: why our PPO's MemoryNav (2 m) runs decline after ~300k steps while
# RecurrentPPO's holds: the GRU 91 at 600k steps, seed 1, with one setting of sb3's
# changed each (per-minibatch advantage normalisation; an entropy bonus of 0.01), the two
# side by side; from a worktree at 67e10f8, after the blind control.
while [ ! -f /tmp/s37/never.rc ]; do sleep 20; done
cd /tmp/s37/wt
export PYTHONPATH=/tmp/s37/wt
PY=/work/main/.venv/bin/python
run() {  # name, --set ...
  name=$1; shift
  $PY -m training.ppo --config training/configs/ppo_memorynav2_gru.yaml --seed 1 \
      --total-steps 600000 --no-progress --set threads=1 --set stop_at_success=0 \
      --set log_every=1 --set compile=true --set run_dir=/tmp/s37/probe/$name "$@" \
      > /tmp/s37/probe_$name.log 2>&1
  echo $? > /tmp/s37/probe_$name.rc
}
run advnorm --set normalize_advantages=true &
run ent01 --set entropy_coef=0.01 &
wait
echo done > /tmp/s37/probe.rc
