"""``python -m dnc_policy.bench policy.onnx``: the policy node's round trip at 1 kHz.

Starts the policy node and a bare echo node (it republishes each observation as the
action: the floor that rclpy and DDS set) as separate processes, and drives both from
this process at ``--rate`` Hz for ``--duration`` seconds each, alternating in chunks of
``--chunk`` seconds so both see the same machine load. For each it prints the
observation-to-action round trip p50/p99/max, missed ticks (no action before the next
observation was due, or none at all) and the node's CPU use, then the p50 ratio and
the targets (p99 <= 1 ms, no missed tick at 1 kHz, p50 within 1.5x the echo node).

QoS is reliable, depth 1000 (each observation must be answered to be matched with its
action); the watchdog is off. The nodes run on ROS domain ``--domain`` (default: one
derived from this process id), localhost only, so a robot on the network is not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .sim_loop import ros_environ

TARGET_P99_US = 1000.0
TARGET_RATIO = 1.5
QOS_DEPTH = 1000


def echo_main(args=None) -> int:
    """``echo_node``: republish every ``observation`` as ``action`` (a bench baseline)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from std_msgs.msg import Float32MultiArray

    from .node import qos_profile

    rclpy.init(args=args if args is not None else sys.argv)
    node = rclpy.create_node("echo_node")
    rel = node.declare_parameter("reliable", True).value
    depth = node.declare_parameter("depth", QOS_DEPTH).value
    qos = qos_profile(bool(rel), int(depth))
    pub = node.create_publisher(Float32MultiArray, "action", qos)
    node.create_subscription(Float32MultiArray, "observation", pub.publish, qos)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Target:
    """One node under test: its process, its topics, what came back."""

    def __init__(self, name: str, cmd: list[str], ns: str, env: dict, node_ctx):
        from std_msgs.msg import Float32MultiArray

        from .node import qos_profile

        self.name, self.ns = name, ns
        self.log = tempfile.TemporaryFile("w+")  # a pipe nobody reads could fill and block
        self.proc = subprocess.Popen(cmd + ["-r", f"__ns:=/{ns}"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True)
        qos = qos_profile(True, QOS_DEPTH)
        pub_node, sub_node = node_ctx
        self.pub = pub_node.create_publisher(Float32MultiArray, f"/{ns}/observation", qos)
        self.received: list[float] = []  # arrival times (perf_counter)
        self.sub = sub_node.create_subscription(Float32MultiArray, f"/{ns}/action",
                                                self._on_action, qos)
        self.sent: list[float] = []
        self.rtt_us: list[float] = []
        self.missed = 0
        self.cpu = 0.0
        self.wall = 0.0

    def _on_action(self, msg) -> None:
        self.received.append(time.perf_counter())

    def ready(self, sub_node) -> bool:
        # Subscription.get_publisher_count (matched writers) is Jazzy+; Humble: the graph.
        matched = getattr(self.sub, "get_publisher_count", None)
        return self.pub.get_subscription_count() > 0 and (
            matched() if matched else sub_node.count_publishers(f"/{self.ns}/action")) > 0

    def drive(self, executor, obs_msgs: list, rate: float, seconds: float) -> None:
        """Publish at ``rate`` for ``seconds``; collect round trips of this chunk."""
        period = 1.0 / rate
        n = int(seconds * rate)
        self.received.clear()
        sent = []
        cpu0, wall0 = _cpu_seconds(self.proc.pid), time.perf_counter()
        t_next = time.perf_counter()
        i = 0
        # One thread: answers are taken (and timestamped) while waiting for the next send.
        while i < n:
            left = t_next - time.perf_counter()
            if left > 5e-5:
                executor.spin_once(timeout_sec=left - 5e-5)
                continue
            while time.perf_counter() < t_next:
                pass
            sent.append(time.perf_counter())
            self.pub.publish(obs_msgs[i % len(obs_msgs)])
            t_next += period
            i += 1
        end = time.perf_counter() + 0.2  # the last answers
        while time.perf_counter() < end:
            executor.spin_once(timeout_sec=0.01)
        self.cpu += _cpu_seconds(self.proc.pid) - cpu0
        self.wall += time.perf_counter() - wall0
        got = list(self.received)
        # Answers come in order, one per observation (reliable QoS).
        for i, t in enumerate(sent):
            if i >= len(got):
                self.missed += 1
                continue
            rtt = got[i] - t
            self.rtt_us.append(rtt * 1e6)
            nxt = sent[i + 1] if i + 1 < len(sent) else t + period
            if got[i] > nxt:
                self.missed += 1
        self.sent += sent

    def result(self) -> dict:
        r = np.asarray(self.rtt_us)
        return {"node": self.name, "ticks": len(self.sent), "missed": self.missed,
                "p50_us": float(np.percentile(r, 50)) if r.size else float("nan"),
                "p99_us": float(np.percentile(r, 99)) if r.size else float("nan"),
                "max_us": float(r.max()) if r.size else float("nan"),
                "cpu_percent": 100.0 * self.cpu / max(self.wall, 1e-9)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="policy.onnx written by export.onnx")
    p.add_argument("--rate", type=float, default=1000.0, help="observations per second")
    p.add_argument("--duration", type=float, default=30.0, help="seconds per node")
    p.add_argument("--chunk", type=float, default=5.0, help="seconds per alternation")
    p.add_argument("--domain", type=int, default=None, help="ROS domain id")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--plot", default=None, help="round-trip histogram PNG (matplotlib)")
    a = p.parse_args(argv)
    if not Path(a.model).is_file():
        p.exit(2, f"error: model {a.model!r} does not exist\n")

    env = ros_environ(a.domain)
    os.environ.update({k: v for k, v in env.items() if k.startswith("ROS_")})
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float32MultiArray

    from .runtime import PolicyRuntime

    obs_dim = PolicyRuntime(a.model).obs_dim
    rng = np.random.default_rng(0)
    msgs = []
    for _ in range(256):
        m = Float32MultiArray()
        m.data = rng.uniform(-1, 1, obs_dim).astype(np.float32).tolist()
        msgs.append(m)

    rclpy.init()
    pub_node = rclpy.create_node("bench_driver")
    sub_node = rclpy.create_node("bench_receiver")
    py = sys.executable
    policy_cmd = [py, "-m", "dnc_policy.node", "--ros-args", "-p", f"model_path:={a.model}",
                  "-p", "qos.observation_reliability:=reliable", "-p", f"qos.depth:={QOS_DEPTH}",
                  "-p", "obs_timeout_ms:=0.0", "-p", "threads:=1"]
    echo_cmd = [py, "-m", "dnc_policy.bench", "--echo", "--ros-args"]
    targets = [Target("echo", echo_cmd, "bench_echo", env, (pub_node, sub_node)),
               Target("policy", policy_cmd, "bench_policy", env, (pub_node, sub_node))]
    executor = SingleThreadedExecutor()
    executor.add_node(sub_node)
    try:
        deadline = time.monotonic() + 60
        while not all(t.ready(sub_node) for t in targets):
            executor.spin_once(timeout_sec=0.1)
            for t in targets:
                if t.proc.poll() is not None:
                    t.log.seek(0)
                    raise SystemExit(f"error: the {t.name} node exited: {t.log.read()}")
            if time.monotonic() > deadline:
                raise SystemExit("error: the nodes did not come up within 60 s")
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        for t in targets:  # warm-up (not counted)
            t.drive(executor, msgs, a.rate, 1.0)
            t.rtt_us.clear(), t.sent.clear()
            t.missed, t.cpu, t.wall = 0, 0.0, 0.0
        chunks = max(1, int(round(a.duration / a.chunk)))
        bar = _progress(chunks * len(targets))
        for _ in range(chunks):
            for t in targets:
                t.drive(executor, msgs, a.rate, a.duration / chunks)
                bar()
        print(file=sys.stderr)
    finally:
        for t in targets:
            t.proc.terminate()
        for t in targets:
            try:
                t.proc.wait(10)
            except subprocess.TimeoutExpired:
                t.proc.kill()
        executor.shutdown()
        rclpy.try_shutdown()
    res = {t.name: t.result() for t in targets}
    echo, pol = res["echo"], res["policy"]
    ratio = pol["p50_us"] / echo["p50_us"]
    out = {"rate_hz": a.rate, "duration_s": a.duration, "model": a.model, **res,
           "p50_ratio": ratio,
           "targets": {"p99_le_1ms": pol["p99_us"] <= TARGET_P99_US,
                       "no_missed_ticks": pol["missed"] == 0,
                       "p50_within_1.5x_echo": ratio <= TARGET_RATIO}}
    print(f"observation -> action round trip at {a.rate:g} Hz, {a.duration:g} s per node, "
          f"alternating {a.chunk:g} s chunks (reliable QoS, same machine)")
    print(f"{'node':8} {'ticks':>7} {'p50 us':>8} {'p99 us':>8} {'max us':>9} {'missed':>7} "
          f"{'CPU %':>6}")
    for r in (echo, pol):
        print(f"{r['node']:8} {r['ticks']:7d} {r['p50_us']:8.1f} {r['p99_us']:8.1f} "
              f"{r['max_us']:9.1f} {r['missed']:7d} {r['cpu_percent']:6.1f}")
    print(f"policy/echo p50 ratio: {ratio:.2f}")
    for k, ok in out["targets"].items():
        print(f"  {k}: {'PASS' if ok else 'MISS'}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    if a.plot:
        _plot(targets, a.plot)
    return out


def _progress(total: int):
    done = [0]

    def step():
        done[0] += 1
        print(f"\rbench: {done[0]}/{total} chunks", end="", file=sys.stderr, flush=True)

    return step


def _plot(targets, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    hi = max(np.percentile(t.rtt_us, 99.9) for t in targets if t.rtt_us)
    bins = np.linspace(0, hi, 80)
    for t in targets:
        ax.hist(np.clip(t.rtt_us, 0, hi), bins=bins, alpha=0.6, label=t.name)
    ax.axvline(TARGET_P99_US, color="k", ls="--", lw=1, label="1 ms")
    ax.set_xlabel("observation -> action round trip (us)")
    ax.set_ylabel("ticks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    if "--echo" in sys.argv:
        sys.argv.remove("--echo")
        sys.exit(echo_main())
    main()
