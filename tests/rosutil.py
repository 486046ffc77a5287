"""Shared pieces of the ROS 2 tests: the colcon-built workspace, the node processes
started from its install space with ``--ros-args``, a peer node in the test process,
and a DNC policy trained and exported for them. Everything is real: rclpy from PyPI,
Fast DDS between processes, onnxruntime.

Each pytest session uses its own ROS domain id (and localhost-only discovery), so runs
on one machine do not hear each other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from dnc_policy_tools.sim_loop import colcon_build as sim_loop_colcon_build
from dnc_policy_tools.sim_loop import config_file, default_domain, executable, install_environ
from dnc_policy_tools.sim_loop import ros_environ as sim_loop_ros_environ

ROOT = Path(__file__).resolve().parents[1]
DOMAIN_ID = default_domain()  # this session's own


def ros_environ() -> dict:
    """This process's environment for ROS: the session's domain, localhost only."""
    return sim_loop_ros_environ(DOMAIN_ID)


def ros_context():
    """A new rclpy context in this process, on the session's domain and localhost only
    (the ``ROS_*`` settings of :func:`ros_environ`); shut it down with
    ``rclpy.try_shutdown(context=...)``."""
    import rclpy

    os.environ.update({k: v for k, v in ros_environ().items() if k.startswith("ROS_")})
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    return context


def colcon_build(base: Path) -> Path:
    """``colcon build`` of ros2_ws into ``base``; returns the install space."""
    return sim_loop_colcon_build(ROOT / "ros2_ws" / "src", base, timeout=300)


class Workspace:
    """The installed package: its executables and the environment to run them in."""

    def __init__(self, install: Path):
        self.install = install
        self.prefix = install / "dnc_policy"
        self.tools_prefix = install / "dnc_policy_tools"
        # What `source install/setup.bash` adds (+ the project root, so the sim bridge
        # finds the `sim` envs).
        self.env = install_environ(install, ros_environ())
        self.env["PYTHONPATH"] += os.pathsep + str(ROOT)

    def exe(self, name: str) -> Path:
        return Path(executable(self.install, name)[0])

    def config(self, name: str) -> Path:
        """An installed config file: policy.yaml of dnc_policy, sim.yaml of the tools."""
        return config_file(self.install, "dnc_policy_tools" if name == "sim.yaml"
                           else "dnc_policy", name)


def ros_args(params: dict) -> list[str]:
    out = ["--ros-args"]
    for k, v in params.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            v = "[" + ", ".join(repr(x) if isinstance(x, str) else str(x) for x in v) + "]"
        out += ["-p", f"{k}:={v}"]
    return out


class Proc:
    """An installed executable run as its own process; output goes to a log file."""

    def __init__(self, ws: Workspace, exe: str, params: dict, log: Path, extra=()):
        """``extra``: more ``--ros-args`` arguments (e.g. ``--params-file``), before ``-p``."""
        self.log_path = log
        self._log = open(log, "w")
        # Parameter files first: later sources win, as in a launch file's `parameters`.
        cmd = [str(ws.exe(exe)), "--ros-args", *extra, *ros_args(params)[1:]]
        self.p = subprocess.Popen(cmd,
                                  env=ws.env, stdout=self._log, stderr=subprocess.STDOUT,
                                  start_new_session=True)

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, sig=signal.SIGINT, timeout: float = 15.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        self._log.close()
        return rc

    def wait(self, timeout: float) -> int:
        rc = self.p.wait(timeout)
        self._log.close()
        return rc

    def wait_for_log(self, pattern: str, timeout: float = 30.0) -> None:
        """Until the process has printed ``pattern`` (AssertionError if it exits first)."""
        end = time.monotonic() + timeout
        while pattern not in self.text():
            assert self.alive(), f"exited ({self.p.returncode}) before {pattern!r}:\n{self.text()}"
            assert time.monotonic() < end, f"no {pattern!r} after {timeout} s:\n{self.text()}"
            time.sleep(0.05)

    def text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()


class Peer:
    """A node in the test process: publishes observations, collects actions, debug
    values and diagnostics, calls services."""

    def __init__(self, name: str = "test_peer", reliable: bool = True):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from dnc_policy.node import qos_profile
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import Float32, Float32MultiArray

        self.context = ros_context()
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        qos = qos_profile(reliable, 10000)
        self.obs_pub = self.node.create_publisher(Float32MultiArray, "observation", qos)
        self.actions: list = []  # (label, data, receive time)
        self.values: list[float] = []
        self.diagnostics: list = []
        self.action_sub = self.node.create_subscription(Float32MultiArray, "action",
                                                        self._on_action, qos)
        self.node.create_subscription(Float32, "/dnc_policy/debug/value",
                                      lambda m: self.values.append(m.data), 10000)
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      self.diagnostics.append, 10)
        self.Float32MultiArray = Float32MultiArray

    def _on_action(self, msg) -> None:
        label = msg.layout.dim[0].label if msg.layout.dim else ""
        self.actions.append((label, np.asarray(msg.data, np.float32), time.monotonic()))

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.01, max(0.0, end - time.monotonic())))

    def spin_until(self, pred, timeout: float = 10.0, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.01)

    def wait_for_node(self, timeout: float = 30.0, subscriptions: int = 1) -> None:
        """Until the policy node's observation subscription and action publisher match
        (``subscriptions``: how many matched readers of ``observation`` to wait for; a
        killed process's endpoints linger until their DDS lease ends)."""
        self.spin_until(lambda: self.obs_pub.get_subscription_count() >= subscriptions
                        and self.action_sub.get_publisher_count() >= subscriptions, timeout,
                        "the policy node's topics to match ours")
        self.spin(0.2)

    def publish(self, obs) -> None:
        msg = self.Float32MultiArray()
        msg.data = [float(x) for x in np.asarray(obs, np.float64).reshape(-1)]
        self.obs_pub.publish(msg)

    def send(self, obs, timeout: float = 10.0):
        """Publish one observation; the next action that arrives (label, data)."""
        n = len(self.actions)
        self.publish(obs)
        self.spin_until(lambda: len(self.actions) > n, timeout, "an action")
        return self.actions[n][:2]

    def send_past_watchdog(self, obs, timeout: float = 10.0):
        """Publish one observation while the node's watchdog may be publishing safe
        actions: the first policy action that follows (label, data); safe ones before it
        are allowed (they may have been in flight when the observation went out)."""
        n = len(self.actions)
        self.publish(obs)
        self.spin_until(lambda: any(a[0] == "action" for a in self.actions[n:]), timeout,
                        "a policy action")
        return next(a for a in self.actions[n:] if a[0] == "action")[:2]

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        client = self.node.create_client(srv_type, name)
        self.spin_until(client.service_is_ready, timeout, f"service {name}")
        fut = client.call_async(request)
        self.spin_until(fut.done, timeout, f"the answer of {name}")
        self.node.destroy_client(client)
        return fut.result()

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def train_tmaze_dnc(base: Path) -> Path:
    """A small DNC trained on a short T-maze (seconds on one core), exported to ONNX."""
    return train_tmaze(base, "dnc")


def train_tmaze(base: Path, core: str = "dnc", algo: str = "a2c") -> Path:
    """A small memory policy trained on a short T-maze (seconds on one core), exported to
    ONNX as ``tmaze_<core>.onnx``: a ``dnc`` or ``ntm`` core (H = 32, 8 slots of 8, one
    read head) or a ``gru`` or ``lstm`` of 32, trained by ``training.a2c`` or, with
    ``algo="ppo"``, by ``training.ppo`` at its own defaults for the rest."""
    import torch

    from export.onnx import build_contract, export_policy, sha256_of
    from training import a2c, ppo
    from training import checkpoint as ckpt_io
    from training.config import resolve

    sizes = ("{hidden_size: 32}" if core in ("gru", "lstm") else
             "{hidden_size: 32, memory_slots: 8, word_size: 8, read_heads: 1}")
    speed = ["lr=3e-3", "num_envs=8"] if algo == "a2c" else []
    threads = torch.get_num_threads()
    try:
        cfg = resolve(None, [
            f"core={core}", f"core_config={sizes}", "env_kwargs.length=4",
            "env_kwargs.bump_penalty=0.1", *speed, "stop_at_success=0.95", "total_steps=300000",
            "compile=false", "threads=1", "seed=1", "checkpoint_every=100000000",
            f"run_dir={base}"], algo=algo)
        train = {"a2c": a2c.train, "ppo": ppo.train}[algo]
        ckpt = Path(train(cfg, progress=False, run_dir=base / "run")["checkpoint"])
        policy, ck = ckpt_io.load_policy(ckpt)
        return export_policy(policy, build_contract(policy, ck, sha256_of(ckpt)),
                             base / f"tmaze_{core}.onnx")
    finally:
        torch.set_num_threads(threads)


def stop_tqdm_monitor() -> None:
    """tracemalloc counts the allocations of every Python thread: stop tqdm's monitor
    thread (started by any earlier progress bar in this process, it wakes every 10 s and
    allocates), so that an allocation test traces the code under test alone. (Idle
    workers that earlier tests' executors left blocked on their queues allocate
    nothing, and are left alone.)"""
    import tqdm
    tqdm.tqdm.monitor_interval = 0  # no new monitor threads
    if tqdm.tqdm.monitor is not None:
        tqdm.tqdm.monitor.exit()
        tqdm.tqdm.monitor.join()
        tqdm.tqdm.monitor = None
