"""The main job on the embedded default, end to end: ``python -m training.demo``.

1. trains the default DNC policy (``python -m training.ppo`` with no arguments: the
   T-maze with corridors drawn from [5, 30]; ``--trainer a2c`` for
   ``python -m training.a2c``), 2. evaluates its deterministic policy on 100 new
   episodes, 3. exports it to ONNX with the parity check (``python -m export.onnx``),
   4. runs the same 100 episodes through the robot runtime (``python -m
   export.evaluate``), and 100 more at a corridor of 300 (10x the longest trained),
   5. builds the ROS 2 package with colcon and runs the policy node against the sim
   bridge over DDS for 20 episodes, then 20 at the corridor of 300 (``python -m
   dnc_policy_tools.sim_loop``, what ``ros2 launch dnc_policy_tools sim.launch.py`` starts), 6. draws
   the memory (``python -m training.visualize``), then prints the success rates, the
   node's latency and where the artifacts are.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from training import a2c, ppo
from training.config import TrainConfig
from training.evaluate import evaluate, format_result

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6
LONG = 300  # the length-generalisation check: 10x the longest trained corridor
DRAWN = 100  # the corridor the memory is drawn on (the README's picture)
TRAINERS = {"ppo": ppo.train, "a2c": a2c.train}


def step(k: int, text: str) -> None:
    print(f"[{k}/{STEPS}] {text}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default="runs/demo", help="parent folder of the run")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes")
    p.add_argument("--ros-episodes", type=int, default=20,
                   help="episodes through the ROS 2 node")
    p.add_argument("--trainer", choices=sorted(TRAINERS), default="ppo",
                   help="which trainer's embedded default to run (default: ppo)")
    a = p.parse_args(argv)
    cfg = TrainConfig.default(a.trainer)
    cfg.run_dir = a.run_dir
    # The default stops at 98% rolling success, after about 8k env steps (80 s eager on
    # two quiet cores): "auto" would compile for its 1.5M total_steps, and the one-off
    # compile (minutes on a loaded machine) would outlast what it saves here.
    cfg.compile = False
    cfg.validate()
    step(1, f"training the default policy ({a.trainer}): {cfg.core} on {cfg.env} "
            f"{cfg.env_kwargs}")
    result = TRAINERS[a.trainer](cfg)
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
    long_kwargs = {"length": LONG}
    ev_long = evaluate_onnx(str(onnx_path), episodes=a.episodes, env_kwargs=long_kwargs)
    print(f"      at a corridor of {LONG}: " + format_result(ev_long))

    step(5, f"colcon build of ros2_ws, then the policy node against the sim bridge over "
            f"ROS 2 for {a.ros_episodes} episodes")
    ros, ros_long, ros_same = None, None, False
    try:
        from dnc_policy_tools.sim_loop import colcon_build, describe, run_sim_loop

        install = colcon_build(ROOT / "ros2_ws" / "src", ROOT / "ros2_ws")
        ros = run_sim_loop(onnx_path, episodes=a.ros_episodes, install=install,
                           log_dir=run_dir / "ros")
        print("      " + describe(ros).replace("\n", "\n      "))
        ros_same = played_the_same(ros, ev_rt)
        ros_long = run_sim_loop(onnx_path, episodes=a.ros_episodes, install=install,
                                log_dir=run_dir / "ros_long",
                                env_kwargs={**ev_long["env_kwargs"]})
        print(f"      at a corridor of {LONG}: " + describe(ros_long).splitlines()[0])
        ros_same = ros_same and played_the_same(ros_long, ev_long)
    except (ImportError, RuntimeError) as e:
        ros_same = False
        print(f"      FAILED: {e}")

    step(6, f"drawing the memory over one episode on a corridor of {DRAWN}")
    pictures = run_dir / "pictures"
    drawn = subprocess.run([sys.executable, "-m", "training.visualize", result["checkpoint"],
                            "--env-kwargs", json.dumps({"length": DRAWN}),
                            "--out", str(pictures)], check=False).returncode == 0

    print(f"\nrun folder:  {run_dir}  (metrics.csv, TensorBoard events, config.yaml)\n"
          f"checkpoint:  {result['checkpoint']}\npolicy.onnx: {onnx_path}\n"
          f"ROS logs:    {run_dir / 'ros'}  (policy_node.log, sim_bridge.log, summary.json)\n"
          f"pictures:    {pictures if drawn else 'FAILED'}")
    rate = None if ros is None else ros["success_rate"]
    long_rate = None if ros_long is None else ros_long["success_rate"]
    ok = (rate is not None and rate >= 0.9 and exported.returncode == 0 and same and ros_same
          and drawn)
    shown = "n/a" if rate is None else f"{rate:.0%}"
    print(f"length generalisation: success at a corridor of {LONG} (trained on "
          f"{cfg.env_kwargs.get('length')}): runtime {ev_long['success_rate']:.0%}, ROS 2 node "
          f"{'n/a' if long_rate is None else f'{long_rate:.0%}'} (target >= 90%, reported)")
    print(f"ROS 2 success rate {shown} (target >= 90%); export parity "
          f"{'ok' if exported.returncode == 0 else 'FAILED'}; PyTorch, runtime and ROS 2 "
          f"episodes {'identical' if same and ros_same else 'DIFFER'}: "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def played_the_same(ros: dict, ev: dict) -> bool:
    """The node's episodes over ROS 2 are the runtime's first ones, return for return."""
    n = ros["episodes"]
    return ([e["return"] for e in ros["per_episode"]] == ev["returns"][:n]
            and [e["success"] for e in ros["per_episode"]] == ev["successes"][:n])


if __name__ == "__main__":
    sys.exit(main())
