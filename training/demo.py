"""The main job on the embedded default, end to end: ``python -m training.demo``.

1. trains the default DNC policy (``python -m training.a2c`` with no arguments: the
   T-maze), 2. evaluates its deterministic policy on 100 new episodes, 3. exports it to
   ONNX with the parity check (``python -m export.onnx``), 4. runs the same 100 episodes
   through the robot runtime (``python -m export.evaluate``), 5. builds the ROS 2 package
   with colcon and runs the policy node against the sim bridge over DDS for 20 episodes
   (``python -m dnc_policy.sim_loop``, what ``ros2 launch dnc_policy sim.launch.py``
   starts), 6. draws the memory (``python -m training.visualize``), then prints the
   success rate, the node's latency and where the artifacts are.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from training.a2c import train
from training.config import TrainConfig
from training.evaluate import evaluate, format_result

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6


def step(k: int, text: str) -> None:
    print(f"[{k}/{STEPS}] {text}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default="runs/demo", help="parent folder of the run")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes")
    p.add_argument("--ros-episodes", type=int, default=20,
                   help="episodes through the ROS 2 node")
    a = p.parse_args(argv)
    cfg = TrainConfig(run_dir=a.run_dir).validate()
    step(1, f"training the default policy: {cfg.core} on {cfg.env} {cfg.env_kwargs}")
    result = train(cfg)
    print(f"      {result['global_step']} env steps, {result['episodes']} episodes, "
          f"{result['seconds']:.0f} s, rolling training success {result['success']:.3f}")
    step(2, f"evaluating the deterministic PyTorch policy on {a.episodes} new episodes")
    ev = evaluate(result["checkpoint"], episodes=a.episodes)
    print("      " + format_result(ev))
    run_dir = Path(result["run_dir"])
    onnx_path = run_dir / "policy.onnx"
    step(3, "exporting to ONNX, with the onnx.checker and parity checks")
    exported = subprocess.run([sys.executable, "-m", "export.onnx", result["checkpoint"],
                               "-o", str(onnx_path)], check=False)
    step(4, f"the same {a.episodes} episodes through the robot runtime (onnxruntime)")
    from export.evaluate import evaluate as evaluate_onnx
    ev_rt = evaluate_onnx(str(onnx_path), episodes=a.episodes)
    print("      " + format_result(ev_rt))
    same = ev_rt["returns"] == ev["returns"] and ev_rt["successes"] == ev["successes"]

    step(5, f"colcon build of ros2_ws, then the policy node against the sim bridge over "
            f"ROS 2 for {a.ros_episodes} episodes")
    ros, ros_same = None, False
    try:
        from dnc_policy.sim_loop import colcon_build, describe, run_sim_loop

        install = colcon_build(ROOT / "ros2_ws" / "src", ROOT / "ros2_ws")
        ros = run_sim_loop(onnx_path, episodes=a.ros_episodes, install=install,
                           log_dir=run_dir / "ros")
        print("      " + describe(ros).replace("\n", "\n      "))
        n = ros["episodes"]
        ros_same = ([e["return"] for e in ros["per_episode"]] == ev_rt["returns"][:n]
                    and [e["success"] for e in ros["per_episode"]] == ev_rt["successes"][:n])
    except (ImportError, RuntimeError) as e:
        print(f"      FAILED: {e}")

    step(6, "drawing the memory over one episode")
    pictures = run_dir / "pictures"
    drawn = subprocess.run([sys.executable, "-m", "training.visualize", result["checkpoint"],
                            "--out", str(pictures)], check=False).returncode == 0

    print(f"\nrun folder:  {run_dir}  (metrics.csv, TensorBoard events, config.yaml)\n"
          f"checkpoint:  {result['checkpoint']}\npolicy.onnx: {onnx_path}\n"
          f"ROS logs:    {run_dir / 'ros'}  (policy_node.log, sim_bridge.log, summary.json)\n"
          f"pictures:    {pictures if drawn else 'FAILED'}")
    rate = None if ros is None else ros["success_rate"]
    ok = (rate is not None and rate >= 0.9 and exported.returncode == 0 and same and ros_same
          and drawn)
    shown = "n/a" if rate is None else f"{rate:.0%}"
    print(f"ROS 2 success rate {shown} (target >= 90%); export parity "
          f"{'ok' if exported.returncode == 0 else 'FAILED'}; PyTorch, runtime and ROS 2 "
          f"episodes {'identical' if same and ros_same else 'DIFFER'}: "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
