"""The main job on the embedded default, as far as it exists: ``python -m training.demo``.

Trains the default DNC policy (``python -m training.a2c`` with no arguments: the T-maze),
then evaluates its deterministic policy on 100 fresh episodes and prints where the
artifacts are. Export to ONNX and the ROS 2 node join this when they land.
"""

from __future__ import annotations

import argparse
import sys

from training.a2c import train
from training.config import TrainConfig
from training.evaluate import evaluate, format_result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default="runs/demo", help="parent folder of the run")
    p.add_argument("--episodes", type=int, default=100)
    a = p.parse_args(argv)
    cfg = TrainConfig(run_dir=a.run_dir).validate()
    print(f"[1/2] training the default policy: {cfg.core} on {cfg.env} {cfg.env_kwargs}")
    result = train(cfg)
    print(f"      {result['global_step']} env steps, {result['episodes']} episodes, "
          f"{result['seconds']:.0f} s, rolling training success {result['success']:.3f}")
    print(f"[2/2] evaluating the deterministic policy on {a.episodes} new episodes")
    ev = evaluate(result["checkpoint"], episodes=a.episodes)
    print("      " + format_result(ev))
    print(f"\nrun folder:  {result['run_dir']}  (metrics.csv, TensorBoard events, config.yaml)\n"
          f"checkpoint:  {result['checkpoint']}")
    rate = ev["success_rate"]
    ok = rate is not None and rate >= 0.9
    shown = "n/a (the env reports no success)" if rate is None else f"{rate:.0%}"
    print(f"success rate {shown}: {'PASS' if ok else 'FAIL'} (target >= 90%)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
