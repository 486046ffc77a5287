"""``python -m dnc_policy_tools.sim_loop policy.onnx [--episodes 20]``: sim-in-the-loop
without the ROS launch tools.

Starts what ``ros2 launch dnc_policy_tools sim.launch.py`` starts (the policy node of
``dnc_policy`` and the sim bridge of this package, each its own process, with
``dnc_policy``'s config/policy.yaml and this package's config/sim.yaml), waits for the
bridge's summary and stops the node. The executables come from a colcon install space
(``--install ros2_ws/install``) or, without one, from this Python environment
(``python -m dnc_policy.node`` / ``dnc_policy_tools.sim_bridge``). Both run on a ROS
domain of their own (``--domain``, default derived from this process id), localhost only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY_SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
ROBOT, TOOLS = "dnc_policy", "dnc_policy_tools"  # the two ament packages
#: The package of each executable.
EXECUTABLES = {"policy_node": (ROBOT, "node"), "sim_bridge": (TOOLS, "sim_bridge"),
               "echo_node": (TOOLS, "bench")}


def config_file(install: Path | None, package: str, name: str) -> Path:
    """``config/<name>`` of ``package``: in the install space, else in the source tree
    beside this package (``ros2_ws/src/<package>``), else in the ament index."""
    if install is not None:
        return install / package / "share" / package / "config" / name
    here = Path(__file__).resolve().parents[2] / package / "config"
    if here.is_dir():
        return here / name
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(package)) / "config" / name


def default_domain() -> int:
    """A ROS domain id of this process's own (0..232 are valid Fast DDS ids)."""
    return 20 + os.getpid() % 180


def ros_environ(domain: int | None = None, base: dict | None = None) -> dict:
    """``base`` (default: this process's environment) on ROS domain ``domain`` (default:
    :func:`default_domain`), discovery on localhost only: a run never reaches a robot on
    the network, and runs side by side do not hear each other."""
    env = dict(os.environ if base is None else base)
    env.update(ROS_DOMAIN_ID=str(default_domain() if domain is None else domain),
               ROS_LOCALHOST_ONLY="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    env.pop("ROS_STATIC_PEERS", None)
    return env


def install_environ(install: Path, env: dict) -> dict:
    """``env`` plus what ``source install/setup.bash`` adds for the two ament_python
    packages."""
    env = dict(env)
    for package in (TOOLS, ROBOT):  # the robot package first on the paths
        prefix = install / package
        env["PYTHONPATH"] = os.pathsep.join([str(prefix / PY_SITE), env.get("PYTHONPATH", "")])
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix),
                                                    env.get("AMENT_PREFIX_PATH", "")])
    return env


def colcon_build(src: Path, base: Path, timeout: float = 600.0) -> Path:
    """``colcon build`` of the packages under ``src`` into ``base``/{build,install,log};
    the install space. RuntimeError with colcon's output if it fails."""
    colcon = Path(sys.executable).parent / "colcon"
    cmd = [str(colcon if colcon.exists() else shutil.which("colcon") or "colcon"),
           "--log-base", str(base / "log"), "build", "--base-paths", str(src),
           "--build-base", str(base / "build"), "--install-base", str(base / "install")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"colcon build failed:\n{out.stdout}\n{out.stderr}")
    return base / "install"


def executable(install: Path | None, name: str) -> list[str]:
    """The command of an executable of the two packages (:data:`EXECUTABLES`): from a
    colcon install space, or (``install`` None) this Python environment's module."""
    package, module = EXECUTABLES[name]
    if install is None:
        cmd = [sys.executable, "-m", f"{package}.{module}"]
        return cmd + (["--echo"] if name == "echo_node" else [])
    return [str(install / package / "lib" / package / name)]


def run_sim_loop(model: str | Path, episodes: int = 20, seed: int = 0,
                 install: str | Path | None = None, domain: int | None = None,
                 mode: str = "lockstep", log_dir: str | Path | None = None,
                 timeout: float = 600.0, env_kwargs: dict | None = None) -> dict:
    """Run the node against the bridge; the bridge's summary (dict). RuntimeError with
    both processes' output if the bridge fails or the node dies. ``env_kwargs``, when
    given, replaces the env keyword arguments the bridge takes from the model (e.g. a
    longer corridor than the policy was trained on)."""
    install = Path(install) if install is not None else None
    policy_yaml = config_file(install, ROBOT, "policy.yaml")
    sim_yaml = config_file(install, TOOLS, "sim.yaml")
    node_cmd, bridge_cmd = executable(install, "policy_node"), executable(install, "sim_bridge")
    env = ros_environ(domain)
    if install is not None:
        env = install_environ(install, env)
    logs = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="sim_loop_"))
    logs.mkdir(parents=True, exist_ok=True)
    summary = logs / "summary.json"
    summary.unlink(missing_ok=True)
    model = str(Path(model).resolve())
    node_log, bridge_log = open(logs / "policy_node.log", "w"), open(logs / "sim_bridge.log", "w")
    node = subprocess.Popen(
        node_cmd + ["--ros-args", "--params-file", str(policy_yaml),
                    "--params-file", str(sim_yaml), "-p", f"model_path:={model}"],
        env=env, stdout=node_log, stderr=subprocess.STDOUT)
    extra = []
    if env_kwargs is not None:  # as a params file: a -p value would be parsed as YAML
        kwargs_file = logs / "bridge_env_kwargs.yaml"
        kwargs_file.write_text(json.dumps(  # JSON is YAML; the parameter is a JSON string
            {"sim_bridge": {"ros__parameters": {"env_kwargs": json.dumps(env_kwargs)}}}))
        extra = ["--params-file", str(kwargs_file)]
    bridge = subprocess.Popen(
        bridge_cmd + ["--ros-args", "--params-file", str(sim_yaml), *extra,
                      "-p", f"model_path:={model}", "-p", f"episodes:={episodes}",
                      "-p", f"seed:={seed}", "-p", f"mode:={mode}",
                      "-p", f"summary_path:={summary}"],
        env=env, stdout=bridge_log, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + timeout
        while bridge.poll() is None:
            if node.poll() is not None or time.monotonic() > end:
                bridge.send_signal(signal.SIGINT)
                bridge.wait(10)
                break
            time.sleep(0.1)
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
            try:
                node.wait(15)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()  # reaped: its exit status goes into the error below
        node_log.close()
        bridge_log.close()
    out = ((logs / "policy_node.log").read_text(), (logs / "sim_bridge.log").read_text())
    if bridge.returncode != 0 or not summary.exists():
        raise RuntimeError(f"sim-in-the-loop failed (bridge exit {bridge.returncode}, node exit "
                           f"{node.returncode}); logs in {logs}\n--- policy node ---\n{out[0]}"
                           f"\n--- sim bridge ---\n{out[1]}")
    result = json.loads(summary.read_text())
    result["logs"] = str(logs)
    return result


def describe(s: dict) -> str:
    lines = [(f"{s['episodes']} episodes of {s['env']} over ROS 2 ({s['mode']}): success "
              f"{s['success_rate']:.0%}, mean return {s['mean_return']:.3f}, mean length "
              f"{s['mean_length']:.1f}")]
    if s.get("round_trip_us"):
        r = s["round_trip_us"]
        lines.append(f"observation -> action round trip p50 {r['p50']:.0f} us, p99 "
                     f"{r['p99']:.0f} us ({r['n']} ticks)")
    d = s.get("policy_diagnostics") or {}
    if d:
        lines.append(f"policy node: step latency p50 {float(d['step_latency_p50_us']):.0f} us, "
                     f"p99 {float(d['step_latency_p99_us']):.0f} us, {d['ticks']} ticks, "
                     f"{d['rejected_inputs']} rejected inputs, {d['providers']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="policy.onnx written by export.onnx")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", choices=("lockstep", "realtime"), default="lockstep")
    p.add_argument("--install", default=None, help="colcon install space (ros2_ws/install)")
    p.add_argument("--domain", type=int, default=None, help="ROS domain id")
    p.add_argument("--logs", default=None, help="folder for the two logs and summary.json")
    p.add_argument("--env-kwargs", default=None, metavar="JSON",
                   help='env keyword arguments instead of the model\'s, e.g. \'{"length": 300}\'')
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    a = p.parse_args(argv)
    if not Path(a.model).is_file():
        p.exit(2, f"error: model {a.model!r} does not exist\n")
    try:
        kwargs = None if a.env_kwargs is None else json.loads(a.env_kwargs)
    except json.JSONDecodeError as e:
        p.exit(2, f"error: --env-kwargs is not JSON: {e}\n")
    if kwargs is not None and not isinstance(kwargs, dict):
        p.exit(2, "error: --env-kwargs must be a JSON object, e.g. '{\"length\": 300}'\n")
    try:
        s = run_sim_loop(a.model, a.episodes, a.seed, a.install, a.domain, a.mode, a.logs,
                         env_kwargs=kwargs)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(s) if a.json else describe(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
