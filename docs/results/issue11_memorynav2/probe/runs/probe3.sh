#!/bin/bash
# issue 11: the MemoryNav (2 m) decline, a second seed: the GRU 91 at 600k steps, seed 2,
# with PPO's defaults (the shared core) and with a separate critic GRU, side by side;
# from a worktree at 67e10f8.
cd /tmp/s37/wt
export PYTHONPATH=/tmp/s37/wt
PY=/work/main/.venv/bin/python
run() {  # name, --set ...
  name=$1; shift
  $PY -m training.ppo --config training/configs/ppo_memorynav2_gru.yaml --seed 2 \
      --total-steps 600000 --no-progress --set threads=1 --set stop_at_success=0 \
      --set log_every=1 --set compile=true --set run_dir=/tmp/s37/probe3/$name "$@" \
      > /tmp/s37/probe3_$name.log 2>&1
  echo $? > /tmp/s37/probe3_$name.rc
}
run shared_s2 &
run critic_s2 --set separate_critic=true &
wait
echo done > /tmp/s37/probe3.rc
