"""The main job on the embedded default, as far as it exists: ``python -m training.demo``.

1. trains the default DNC policy (``python -m training.a2c`` with no arguments: the
   T-maze), 2. evaluates its deterministic policy on 100 new episodes, 3. exports it to
   ONNX with the parity check (``python -m export.onnx``) and 4. runs the same 100
   episodes through the robot runtime (``python -m export.evaluate``), then prints where
   the artifacts are. The ROS 2 node joins this when it lands.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from training.a2c import train
from training.config import TrainConfig
from training.evaluate import evaluate, format_result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default="runs/demo", help="parent folder of the run")
    p.add_argument("--episodes", type=int, default=100)
    a = p.parse_args(argv)
    cfg = TrainConfig(run_dir=a.run_dir).validate()
    print(f"[1/4] training the default policy: {cfg.core} on {cfg.env} {cfg.env_kwargs}",
          flush=True)
    result = train(cfg)
    print(f"      {result['global_step']} env steps, {result['episodes']} episodes, "
          f"{result['seconds']:.0f} s, rolling training success {result['success']:.3f}")
    print(f"[2/4] evaluating the deterministic PyTorch policy on {a.episodes} new episodes",
          flush=True)
    ev = evaluate(result["checkpoint"], episodes=a.episodes)
    print("      " + format_result(ev))
    onnx_path = Path(result["run_dir"]) / "policy.onnx"
    print("[3/4] exporting to ONNX, with the onnx.checker and parity checks", flush=True)
    exported = subprocess.run([sys.executable, "-m", "export.onnx", result["checkpoint"],
                               "-o", str(onnx_path)])
    print(f"[4/4] the same {a.episodes} episodes through the robot runtime (onnxruntime)",
          flush=True)
    from export.evaluate import evaluate as evaluate_onnx
    ev_rt = evaluate_onnx(str(onnx_path), episodes=a.episodes)
    print("      " + format_result(ev_rt))
    same = ev_rt["returns"] == ev["returns"] and ev_rt["successes"] == ev["successes"]
    print(f"\nrun folder:  {result['run_dir']}  (metrics.csv, TensorBoard events, config.yaml)\n"
          f"checkpoint:  {result['checkpoint']}\npolicy.onnx: {onnx_path}")
    rate = ev_rt["success_rate"]
    ok = rate is not None and rate >= 0.9 and exported.returncode == 0 and same
    shown = "n/a (the env reports no success)" if rate is None else f"{rate:.0%}"
    print(f"runtime success rate {shown} (target >= 90%); export parity "
          f"{'ok' if exported.returncode == 0 else 'FAILED'}; runtime and PyTorch episodes "
          f"{'identical' if same else 'DIFFER'}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
