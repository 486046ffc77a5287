cd /tmp/s31/wt2   # a worktree at cb17cd3, training/baseline_sb3.py as committed in 2e86bd8
PYTHONPATH=. /tmp/sb3venv/bin/python -m training.baseline_sb3 --env dnc/CartPolePO-v0 --env-kwargs '{}' \
  --seeds 1,2,3 --total-steps 100000 --threads 1 --normalize --shared-lstm \
  --out /tmp/s31/recurrent_ppo_cartpole_po_normalize_shared.jsonl
