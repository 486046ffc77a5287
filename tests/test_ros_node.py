"""The dnc_policy ROS 2 package over real DDS (DESIGN.md §5): colcon build, the policy
node and the sim bridge started as installed executables with ``--ros-args``, in their
own processes; this test process is a third node.

Sim-in-the-loop against the offline runtime, 10,000 fuzzed observations, the watchdog,
``kill -9`` and the memory snapshot, lifecycle transitions, the reset service, cmd_vel,
and configure-time errors.
"""

from __future__ import annotations

import bisect
import json
import re
import shutil
import signal
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from dnc_policy.runtime import PolicyRuntime
from dnc_policy.settings import POLICY_PARAMETERS
from rosutil import Peer, Proc, Workspace, colcon_build, train_tmaze, train_tmaze_dnc
from exported import env_observations

import sim  # noqa: F401  (registers the dnc/ envs)
from training.spaces import ObsFlattener, to_env_actions


pytestmark = pytest.mark.usefixtures("one_thread")

PKG = Path(__file__).resolve().parents[1] / "ros2_ws" / "src" / "dnc_policy"
TOOLS = PKG.parent / "dnc_policy_tools"  # the sim bridge, sim-in-the-loop, the benchmark


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    return Workspace(colcon_build(tmp_path_factory.mktemp("colcon")))


@pytest.fixture(scope="module")
def tmaze(tmp_path_factory) -> Path:
    return train_tmaze_dnc(tmp_path_factory.mktemp("tmaze_dnc"))


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.close()


@pytest.fixture
def procs(ws, tmp_path):
    """Start installed executables; all are stopped at the end of the test."""
    started: list[Proc] = []

    def start(exe: str, params: dict, name: str | None = None, wait_active: bool = True,
              files=()) -> Proc:
        log = tmp_path / f"{name or exe}_{len(started)}.log"
        proc = Proc(ws, exe, params, log, [a for f in files for a in ("--params-file", str(f))])
        started.append(proc)
        if exe == "policy_node" and params.get("autostart", True) and wait_active:
            proc.wait_for_log("active: acting on observations")
        return proc

    yield start
    for proc in started:
        proc.stop(signal.SIGKILL if proc.alive() else signal.SIGINT, timeout=5)


def node_params(model, **extra) -> dict:
    """Reliable QoS (the tests count every message); no watchdog unless asked."""
    return {"model_path": str(model), "qos.observation_reliability": "reliable", "qos.depth": 100,
            "obs_timeout_ms": 0.0, **extra}


def offline_episodes(model: Path, episodes: int, seed: int) -> list[dict]:
    """The same episodes through PolicyRuntime in this process, with training's own
    observation flattening and action conversion (not the bridge's)."""
    rt = PolicyRuntime(model)
    env_cfg = rt.contract["env"]
    env = gym.make(env_cfg["id"], **env_cfg["kwargs"])
    flat = ObsFlattener(env.observation_space)
    out = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        rt.reset()
        ep = {"return": 0.0, "actions": [], "success": False}
        while True:
            a = rt.step(flat(np.asarray(obs)[None]))
            ep["actions"].append(np.asarray(a, np.float32).reshape(-1).tolist())
            env_a = to_env_actions(np.asarray(a)[None] if np.ndim(a) == 0 else a,
                                   env.action_space)[0]
            obs, r, term, trunc, info = env.step(env_a)
            ep["return"] += float(r)
            if term or trunc:
                ep["success"] = bool(info.get("is_success", False))
                break
        out.append(ep)
    return out


# -- the package -------------------------------------------------------------------------
def test_colcon_build_installs_executables_launch_files_and_config(ws):
    for exe in ("policy_node", "sim_bridge", "echo_node"):
        assert ws.exe(exe).is_file(), exe
    assert ws.exe("policy_node").parent == ws.prefix / "lib" / "dnc_policy"
    assert ws.exe("sim_bridge").parent == ws.tools_prefix / "lib" / "dnc_policy_tools"
    installed = {"dnc_policy": ("launch/policy.launch.py", "config/policy.yaml"),
                 "dnc_policy_tools": ("launch/sim.launch.py", "config/sim.yaml")}
    for package, files in installed.items():
        share = ws.install / package / "share" / package
        for f in ("package.xml", *files):
            assert (share / f).is_file(), f
        assert (share.parent / "ament_index" / "resource_index" / "packages"
                / package).exists(), package
    # the robot package carries none of the tools
    robot = {p.name for p in (ws.prefix / "lib" / "dnc_policy").iterdir()}
    assert robot == {"policy_node"}, robot


def _flatten_params(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten_params(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_the_docs_table_lists_every_policy_parameter_and_no_other():
    """docs/ROS.md's parameter table names each parameter of settings.py once (a row may
    group several: `cmd_vel.enabled`, `.linear_index` is cmd_vel.linear_index)."""
    text = (PKG.parents[2] / "docs" / "ROS.md").read_text()
    table = text[text.index("| parameter | default | meaning |"):]
    table = table[:table.index("\n\n")]
    named = []
    for row in table.splitlines()[2:]:
        names = re.findall(r"`([^`]+)`", row.split("|")[1])
        group = names[0].rpartition(".")[0]
        named += [f"{group}{n}" if n.startswith(".") else n for n in names]
    assert sorted(named) == sorted(POLICY_PARAMETERS)


def test_the_docs_table_lists_every_bridge_parameter_with_its_default():
    """docs/ROS.md's sim bridge table is BRIDGE_PARAMETERS: each name once, with the
    default the bridge declares."""
    import json

    from dnc_policy_tools.sim_bridge import BRIDGE_PARAMETERS
    text = (PKG.parents[2] / "docs" / "ROS.md").read_text()
    table = text[text.index("| bridge parameter | default | meaning |"):]
    rows = [r.split("|") for r in table[:table.index("\n\n")].splitlines()[2:]]
    shown = {r[1].strip().strip("`"): r[2].strip().strip("`") for r in rows}
    declared = {n: (p.default or '""') if isinstance(p.default, str) else json.dumps(p.default)
                for n, p in BRIDGE_PARAMETERS.items()}
    assert len(rows) == len(shown) and shown == declared


def test_config_files_use_only_known_parameters_with_valid_values():
    from dnc_policy.settings import parse_policy_settings
    from dnc_policy_tools.sim_bridge import BRIDGE_PARAMETERS

    policy = yaml.safe_load((PKG / "config" / "policy.yaml").read_text())
    params = _flatten_params(policy["/**"]["ros__parameters"])
    # Every parameter but model_path (a launch argument) and the lists whose default is
    # empty (a ROS params file cannot hold `[]`; they are there as comments).
    lists = {"safe_action", "providers", "realtime.cpu_affinity"}
    assert set(params) == set(POLICY_PARAMETERS) - {"model_path"} - lists
    # ... each with the value declared once in settings.py (the file shows the defaults)
    assert {k: v for k, v in params.items() if v != POLICY_PARAMETERS[k].default} == {}
    text = (PKG / "config" / "policy.yaml").read_text()
    assert "# safe_action: [" in text and "# providers: [" in text
    assert "# cpu_affinity: [" in text
    s = parse_policy_settings({**params, "model_path": "x.onnx"})
    assert s.tick_mode == "on_observation" and s.autostart
    assert not s.obs_reliable and s.action_reliable  # sensor data in, reliable out
    assert (s.cpu_affinity, s.fifo_priority, s.mlockall) == ((), 0, False)  # real-time: off
    sim_cfg = yaml.safe_load((TOOLS / "config" / "sim.yaml").read_text())
    node = _flatten_params(sim_cfg["dnc_policy"]["ros__parameters"])
    assert set(node) <= set(POLICY_PARAMETERS)
    assert parse_policy_settings({**params, **node, "model_path": "x.onnx"}).obs_reliable
    bridge = _flatten_params(sim_cfg["sim_bridge"]["ros__parameters"])
    assert set(bridge) <= set(BRIDGE_PARAMETERS)


def test_launch_files_use_the_documented_launch_api():
    """The launch libraries are not on PyPI; here the files are parsed and their
    imports and calls checked against the documented ROS 2 launch API (Humble+)."""
    import ast

    allowed = {"launch": {"LaunchDescription"},
               "launch.actions": {"DeclareLaunchArgument", "Shutdown", "OpaqueFunction"},
               "launch.substitutions": {"LaunchConfiguration", "PathJoinSubstitution"},
               "launch_ros.actions": {"Node", "LifecycleNode"},
               "launch_ros.parameter_descriptions": {"ParameterValue"},
               "launch_ros.substitutions": {"FindPackageShare"}}
    for launch in (PKG / "launch" / "policy.launch.py", TOOLS / "launch" / "sim.launch.py"):
        name = launch.name
        tree = ast.parse(launch.read_text())
        funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert "generate_launch_description" in funcs, name
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module in allowed, (name, node.module)
                assert {a.name for a in node.names} <= allowed[node.module], (name, node.module)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "LifecycleNode":
                kw = {k.arg for k in node.keywords}
                assert {"package", "executable", "name", "namespace"} <= kw  # Humble needs both
        text = launch.read_text()
        assert 'executable="policy_node"' in text and "model_path" in text
        # each executable is looked up in the package that installs it
        assert re.findall(r'package="(\w+)",\s*executable="(\w+)"', text) == (
            [("dnc_policy", "policy_node")] + ([("dnc_policy_tools", "sim_bridge")]
                                               if name == "sim.launch.py" else []))


# -- sim-in-the-loop -----------------------------------------------------------------------
def sim_in_the_loop_matches_offline(ws, procs, model: Path, tmp_path: Path) -> Proc:
    """Node and bridge started as sim.launch.py starts them (the installed config files,
    the model), 20 episodes over DDS: the same actions, returns and successes as the
    offline runtime, and the trained policy solves its T-maze. Returns the node's Proc
    (stopped)."""
    node = procs("policy_node", {"model_path": str(model)},
                 files=[ws.config("policy.yaml"), ws.config("sim.yaml")])
    summary = tmp_path / "summary.json"
    bridge = procs("sim_bridge", {"model_path": str(model), "episodes": 20, "seed": 7,
                                  "summary_path": str(summary), "record_actions": True},
                   files=[ws.config("sim.yaml")])
    assert bridge.wait(120) == 0, bridge.text() + node.text()
    got = json.loads(summary.read_text())
    want = offline_episodes(model, 20, seed=7)
    assert got["episodes"] == 20 and got["error"] == ""
    for k, (g, w) in enumerate(zip(got["per_episode"], want)):
        assert g["seed"] == 7 + k
        assert g["actions"] == w["actions"], f"episode {k}: actions differ"
        assert g["return"] == pytest.approx(w["return"], abs=1e-9), f"episode {k}"
        assert g["success"] == w["success"], f"episode {k}"
    assert got["success_rate"] == np.mean([w["success"] for w in want])
    assert got["success_rate"] >= 0.9, "the trained policy should solve its T-maze"
    assert "20 episodes of dnc/TMaze-v0: success" in bridge.text()
    assert node.alive(), node.text()
    assert node.stop() == 0, node.text()
    return node


def test_sim_in_the_loop_matches_the_offline_runtime(ws, procs, tmaze, tmp_path):
    sim_in_the_loop_matches_offline(ws, procs, tmaze, tmp_path)


def test_sim_in_the_loop_runs_an_ntm_policy_unchanged(ws, procs, tmp_path_factory, tmp_path):
    """Issue 13: an NTM policy (another core, another state: memory, read and write
    weights, read vectors) trained on the T-maze, in the same node and bridge, which
    learn everything about it from the file."""
    model = train_tmaze(tmp_path_factory.mktemp("tmaze_ntm"), core="ntm")
    assert [n for n, _ in PolicyRuntime(model).state_spec] == [
        "h", "c", "memory", "read_weights", "write_weights", "read_vectors"]
    node = sim_in_the_loop_matches_offline(ws, procs, model, tmp_path)
    assert f"configured: {model} (ntm core" in node.text()


def test_sim_in_the_loop_runs_a_ppo_trained_gru_policy_unchanged(ws, procs, tmp_path_factory,
                                                                 tmp_path):
    """Issue 11: a GRU (one state tensor, ``h``) trained by ``training.ppo`` instead of
    ``training.a2c``, exported the same way, in the same node and bridge."""
    model = train_tmaze(tmp_path_factory.mktemp("tmaze_gru_ppo"), core="gru", algo="ppo")
    assert [n for n, _ in PolicyRuntime(model).state_spec] == ["h"]
    cfg = yaml.safe_load((model.parent / "run" / "config.yaml").read_text())
    assert (cfg["algo"], cfg["num_envs"], cfg["update_epochs"]) == ("ppo", 16, 20)  # PPO's own
    node = sim_in_the_loop_matches_offline(ws, procs, model, tmp_path)
    assert f"configured: {model} (gru core" in node.text()


# -- bad input -----------------------------------------------------------------------------
def fuzzed(rng: np.random.Generator, dim: int) -> np.ndarray:
    kind = rng.integers(6)
    if kind == 0:  # a wrong length
        n = int(rng.integers(0, 3 * dim))
        return rng.normal(size=n if n != dim else dim + 1)
    x = rng.normal(size=dim)
    idx = rng.integers(dim, size=int(rng.integers(1, dim + 1)))
    if kind == 1:
        x[idx] = np.nan
    elif kind == 2:
        x[idx] = np.inf
    elif kind == 3:
        x[idx] = -np.inf
    elif kind == 4:  # huge but finite (float32 max included)
        x[idx] = rng.choice([-1, 1], idx.size) * 10.0 ** rng.uniform(6.5, 38.5, idx.size)
        x = np.clip(x, -3.4e38, 3.4e38)  # float32 messages hold up to float32 max
    else:  # a mixture
        x[idx[0]] = np.nan
        x[idx[-1]] = 3.0e38
    return x


def test_fuzzed_observations_are_rejected_without_touching_the_memory(procs, peer, tmaze,
                                                                      tmp_path):
    snap = tmp_path / "mem.npz"
    node = procs("policy_node", node_params(tmaze, **{
        "debug.enabled": True, "snapshot.path": str(snap), "snapshot.period_s": 0.0,
        "diagnostics_period_s": 0.2}))
    peer.wait_for_node()
    rt = PolicyRuntime(tmaze)
    valid = env_observations("dnc/TMaze-v0", rt.contract["env"]["kwargs"], 500, seed=3)
    rng = np.random.default_rng(0)
    n_bad, n_valid = 0, 0
    for i in range(10_500):
        if i % 21 == 20:  # every 21st: a valid observation
            label, data = peer.send(valid[n_valid])
            n_valid += 1
            want = rt.step(valid[n_valid - 1])
            assert label == "action", i
            np.testing.assert_array_equal(data, np.asarray(want, np.float32).reshape(-1))
            peer.spin_until(lambda n=n_valid: len(peer.values) == n, 10, "the debug value")
            assert peer.values[-1] == pytest.approx(float(rt.outputs["value"][0]), abs=1e-6)
        else:
            label, data = peer.send(fuzzed(rng, rt.obs_dim))
            n_bad += 1
            assert label == "safe", i
            np.testing.assert_array_equal(data, [0.0])
    assert n_bad == 10_000 and n_valid == 500
    assert node.alive(), node.text()[-2000:]

    def last_diag():
        for msg in reversed(peer.diagnostics):
            for st in msg.status:
                if st.name.startswith("dnc_policy"):
                    return {kv.key: kv.value for kv in st.values}
        return {}

    peer.spin_until(lambda: last_diag().get("rejected_inputs") == "10000", 10, "diagnostics")
    assert last_diag()["ticks"] == "500"
    warnings = re.findall(r"rejected observation", node.text())
    assert 1 <= len(warnings) < 200, f"{len(warnings)} warnings: not throttled"
    # The memory equals the offline runtime's after the 500 valid observations alone.
    assert node.stop() == 0
    with np.load(snap) as saved:
        for name, arr in rt.snapshot().items():
            np.testing.assert_array_equal(saved[name], arr, err_msg=name)


# -- watchdog ------------------------------------------------------------------------------
def _acts_unless_starved(peer, obs_seq, timeout: float, published_prev: float) -> int:
    """Send each observation in turn, 20 ms apart, wait for the policy's action to it,
    and check every message that arrives meanwhile. A safe action is allowed only where
    the watchdog had a real reason: it reached us more than ``timeout`` after we
    published the observation before the latest one (a stall of this process or the
    node on a loaded machine), which the node's trip time implies. ``published_prev``:
    when the observation before the first was published. Returns how many observations
    such stalls followed."""
    start, published = len(peer.actions), [published_prev]
    for o in obs_seq:
        n = len(peer.actions)
        published.append(time.monotonic())
        peer.publish(o)
        peer.spin_until(lambda: any(a[0] == "action" for a in peer.actions[n:]), 10.0,
                        "the policy's action")
        peer.spin(0.02)
    stalls = set()
    for label, _, received in peer.actions[start:]:
        if label == "action":
            continue
        assert label == "safe"
        k = bisect.bisect_left(published, received) - 1  # the latest observation before it
        since = received - published[max(k - 1, 0)]
        assert since > timeout, (f"safe action {since:.3f} s after the observation before "
                                 f"the latest: the watchdog ({timeout} s) tripped early")
        stalls.add(k)
    return len(stalls)


def test_watchdog_publishes_the_safe_action_until_observations_return(procs, peer, tmaze):
    timeout, rate = 0.3, 50.0
    procs("policy_node", node_params(tmaze, obs_timeout_ms=timeout * 1000, rate_hz=rate,
                                     safe_action=[1.0], diagnostics_period_s=0.1))
    peer.wait_for_node()
    obs = env_observations("dnc/TMaze-v0", {"length": 4}, 60, seed=1)
    # The watchdog counts from activation, so it may have tripped before this peer matched.
    t0 = time.monotonic()
    peer.send_past_watchdog(obs[0])
    stalls = _acts_unless_starved(peer, obs[1:19], timeout, t0)
    t_last = time.monotonic()
    assert peer.send(obs[19])[0] == "action"
    n = len(peer.actions)
    peer.spin(1.0)
    gap = peer.actions[n:]
    assert gap and all(lab == "safe" for lab, _, _ in gap)
    assert all(d.tolist() == [1.0] for _, d, _ in gap)
    delay = gap[0][2] - t_last
    tick = 1.0 / rate
    # The first safe action: after the timeout, within the timeout plus one tick (+ 150 ms
    # for DDS delivery and scheduling on a loaded 2-core machine; typically ~10 ms).
    assert timeout <= delay <= timeout + tick + 0.15, f"first safe action after {delay:.3f} s"
    # Repeated at the tick rate while no observation comes.
    assert len(gap) >= int((1.0 - timeout - tick) * rate * 0.7)
    tripped = [m for m in peer.diagnostics for st in m.status
               if any(kv.key == "watchdog" and kv.value == "tripped" for kv in st.values)]
    assert tripped and tripped[-1].status[0].level == b"\x02"  # ERROR
    # Observations return: the policy acts again and the safe actions stop (a stall of
    # more than the timeout on this shared machine is the one excuse, and must be rare).
    t0 = time.monotonic()
    peer.send_past_watchdog(obs[20])
    stalls += _acts_unless_starved(peer, obs[21:50], timeout, t0)
    assert stalls <= 2, f"{stalls} stalls over {timeout} s in 48 observations"


# -- crash and restore ---------------------------------------------------------------------
def test_kill_9_then_restart_restores_the_last_snapshot(procs, peer, tmaze, tmp_path):
    snap = tmp_path / "memory.npz"
    params = node_params(tmaze, **{"snapshot.path": str(snap), "snapshot.period_s": 0.05,
                                   "debug.enabled": True})
    node = procs("policy_node", params)
    peer.wait_for_node()
    obs = env_observations("dnc/TMaze-v0", {"length": 4}, 40, seed=5)
    for o in obs[:30]:
        peer.send(o)
    rt = PolicyRuntime(tmaze)
    for o in obs[:30]:
        rt.step(o)
    want = rt.snapshot()

    def saved_is_current() -> bool:  # the periodic snapshot after the last tick is on disk
        try:
            with np.load(snap) as saved:
                return all(np.array_equal(saved[k], v) for k, v in want.items())
        except (OSError, ValueError, KeyError):
            return False

    peer.spin_until(saved_is_current, 10, "the snapshot after the 30th tick")
    node.p.send_signal(signal.SIGKILL)
    node.p.wait(10)
    last = tmp_path / "last.npz"
    shutil.copy(snap, last)
    # The file is a consistent state: the offline runtime's after the 30 ticks.
    with np.load(last) as saved:
        for name, arr in want.items():
            np.testing.assert_array_equal(saved[name], arr, err_msg=name)

    # Restart with the same snapshot path: no tick, then a clean stop saves the state
    # it holds, which is the restored one.
    lingering = peer.obs_pub.get_subscription_count()  # the killed node's, until its lease ends
    node2 = procs("policy_node", params)
    peer.wait_for_node(subscriptions=lingering + 1)
    assert node2.stop() == 0
    assert "memory restored from" in node2.text()
    assert not list(tmp_path.glob(".memory.npz.*.tmp")), "temporary files were left"
    with np.load(last) as before, np.load(snap) as after:
        for name in rt.snapshot():
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    # And it continues where it was: the next tick equals the offline runtime's.
    procs("policy_node", params)
    peer.wait_for_node(subscriptions=lingering + 1)
    n = len(peer.values)
    label, data = peer.send(obs[30])
    want = rt.step(obs[30])
    peer.spin_until(lambda: len(peer.values) > n, 10, "the debug value")
    assert label == "action" and data.tolist() == np.asarray(want, np.float32).reshape(-1).tolist()
    assert peer.values[-1] == pytest.approx(float(rt.outputs["value"][0]), abs=1e-6)
    fresh = PolicyRuntime(tmaze)
    fresh.step(obs[30])
    assert abs(float(fresh.outputs["value"][0]) - peer.values[-1]) > 1e-5, \
        "a fresh memory gives the same value: the check above would not see a lost state"


# -- lifecycle and reset -------------------------------------------------------------------
def test_lifecycle_transitions_and_the_reset_service(procs, peer, tmaze):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from std_srvs.srv import Trigger

    node = procs("policy_node", node_params(tmaze, autostart=False, **{"debug.enabled": True}))

    def state() -> str:
        return peer.call(GetState, "/dnc_policy/get_state", GetState.Request()).current_state.label

    def change(tid: int) -> bool:
        req = ChangeState.Request()
        req.transition.id = tid
        return peer.call(ChangeState, "/dnc_policy/change_state", req).success

    assert state() == "unconfigured"
    res = peer.call(Trigger, "/dnc_policy/reset_memory", Trigger.Request())
    assert not res.success and "not configured" in res.message
    assert change(Transition.TRANSITION_CONFIGURE) and state() == "inactive"
    peer.wait_for_node()
    obs = env_observations("dnc/TMaze-v0", {"length": 4}, 20, seed=2)
    peer.publish(obs[0])
    peer.spin(0.5)
    assert peer.actions == [], "inactive: no action"
    assert change(Transition.TRANSITION_ACTIVATE) and state() == "active"
    rt = PolicyRuntime(tmaze)
    for o in obs[:5]:
        label, data = peer.send(o)
        assert label == "action"
        assert data.tolist() == np.asarray(rt.step(o), np.float32).reshape(-1).tolist()
    # reset_memory: the next tick starts a new episode.
    res = peer.call(Trigger, "/dnc_policy/reset_memory", Trigger.Request())
    assert res.success
    no_reset = PolicyRuntime(tmaze)
    for o in obs[:5]:
        no_reset.step(o)
    no_reset.step(obs[5])
    rt.step(obs[5], reset=True)
    n = len(peer.values)
    peer.send(obs[5])
    peer.spin_until(lambda: len(peer.values) > n, 10, "the debug value")
    assert peer.values[-1] == pytest.approx(float(rt.outputs["value"][0]), abs=1e-6)
    assert abs(peer.values[-1] - float(no_reset.outputs["value"][0])) > 1e-5
    # deactivate: the safe action goes out, then nothing.
    n = len(peer.actions)
    assert change(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
    peer.spin_until(lambda: len(peer.actions) > n, 5, "the safe action")
    assert peer.actions[n][0] == "safe"
    n = len(peer.actions)
    peer.publish(obs[6])
    peer.spin(0.5)
    assert len(peer.actions) == n
    assert change(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
    peer.spin_until(lambda: peer.obs_pub.get_subscription_count() == 0, 10,
                    "cleanup to remove the node's subscription")
    assert not peer.call(Trigger, "/dnc_policy/reset_memory", Trigger.Request()).success
    # Parameters are read at configure: refused while a model is loaded, taken otherwise.
    assert set_rate(peer, 25.0).successful
    assert change(Transition.TRANSITION_CONFIGURE) and change(Transition.TRANSITION_ACTIVATE)
    refused = set_rate(peer, 10.0)
    assert not refused.successful and "read at configure" in refused.reason
    peer.wait_for_node()
    assert peer.send(obs[0])[0] == "action"
    # The shutdown transition publishes the safe action and ends the process.
    n = len(peer.actions)
    assert change(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    peer.spin_until(lambda: len(peer.actions) > n, 5, "the safe action")
    assert peer.actions[n][0] == "safe"
    assert node.wait(15) == 0


def set_rate(peer, hz: float):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    req = SetParameters.Request(parameters=[Parameter(name="rate_hz", value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE, double_value=hz))])
    return peer.call(SetParameters, "/dnc_policy/set_parameters", req).results[0]


def test_activate_freezes_the_collector_and_deactivate_unfreezes_it(tmaze):
    """In this process: at activate the node collects once and moves everything made so
    far (the model's session, the runtime's buffers) out of the collector's generations,
    so no later collection walks them; deactivate gives them back, so a cleanup can free
    them; /diagnostics counts the collections since activation."""
    import gc

    import rclpy
    from dnc_policy.node import PolicyNode
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from rosutil import ros_context

    def reported() -> int:
        node._publish_diagnostics()
        return int(next(kv.value for kv in node._diag.status[0].values
                        if kv.key == "gc_collections"))

    gc.unfreeze()
    ctx = ros_context()
    try:
        node = PolicyNode(context=ctx, parameter_overrides=[
            Parameter(k, value=v) for k, v in node_params(tmaze).items()])
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert gc.get_freeze_count() == 0
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            assert gc.get_freeze_count() > 0, "activate did not freeze the collector"
            runtime = node.controller.runtime
            assert not any(o is runtime for o in gc.get_objects()), "the runtime is not frozen"
            before = reported()
            gc.collect()
            assert reported() >= before + 1, "gc_collections does not count a collection"
            assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
            assert gc.get_freeze_count() == 0, "deactivate left the start-up objects frozen"
            assert any(o is runtime for o in gc.get_objects())
            del runtime
            assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        finally:
            node.destroy_node()
    finally:
        gc.unfreeze()
        rclpy.try_shutdown(context=ctx)


@pytest.mark.parametrize("params,message", [
    ({"tick_mode": "sometimes"}, "'tick_mode' = 'sometimes': expected one of on_observation, timer"),
    ({"obs_timout_ms": 100.0}, "unknown parameter 'obs_timout_ms' (did you mean 'obs_timeout_ms'?)"),
    ({"rate_hz": -5.0}, "'rate_hz' = -5.0: expected a number > 0.0"),
    ({"safe_action": [0.0, 1.0]}, "safe_action has 2 values, the model's discrete action has 1"),
    ({"safe_action": [7.0]}, "is not a valid discrete action"),
    ({"cmd_vel.enabled": True}, "cmd_vel needs a Box (velocity) action"),
    ({"providers": ["CUDAExecutionProvider"]}, "not in this onnxruntime build"),
    ({"model_path": "/nonexistent/policy.onnx"}, "'/nonexistent/policy.onnx': no such file"),
    ({"realtime.sched_fifo_priority": 120},
     "'realtime.sched_fifo_priority' = 120: expected 0 (off) or a SCHED_FIFO priority"),
    ({"realtime.cpu_affinity": [-1]}, "'realtime.cpu_affinity' = [-1]: expected a list of CPU ids"),
])
def test_a_bad_parameter_fails_configure_with_a_clear_error(procs, tmaze, params, message):
    node = procs("policy_node", {**node_params(tmaze), **params}, wait_active=False)
    assert node.wait(60) == 1
    text = node.text()
    assert "configure failed" in text and message in text, text


def test_a_real_time_knob_the_os_refuses_is_a_warning_and_the_node_acts(procs, peer, tmaze):
    """CPU 4096 exists on no machine: the OS refuses the affinity (EINVAL); the node logs
    a warning naming the parameter, activates and answers observations as usual."""
    node = procs("policy_node", node_params(tmaze, **{"realtime.cpu_affinity": [4096]}))
    text = node.text()
    warning = next(ln for ln in text.splitlines() if "realtime.cpu_affinity [4096]" in ln)
    assert "WARN" in warning and "sched_setaffinity failed (EINVAL" in warning, text
    assert "affinity left at" in warning and "real-time:" not in text  # nothing applied
    peer.wait_for_node()
    rt = PolicyRuntime(tmaze)
    for o in env_observations("dnc/TMaze-v0", rt.contract["env"]["kwargs"], 3):
        label, action = peer.send(o)
        assert label == "action"
        assert action.tolist() == np.asarray(rt.step(o), np.float32).reshape(-1).tolist()
    assert node.alive()


def test_cmd_vel_from_a_velocity_action_and_timer_mode(procs, peer, models):
    from geometry_msgs.msg import Twist

    nav = models("nav").onnx
    procs("policy_node", node_params(nav, tick_mode="timer", rate_hz=100.0, **{
        "cmd_vel.enabled": True, "cmd_vel.linear_scale": 2.0, "obs_timeout_ms": 200.0,
        "safe_action": [0.0, 0.5]}))
    twists = []
    peer.node.create_subscription(Twist, "cmd_vel", twists.append, 100)
    peer.wait_for_node()
    rt = PolicyRuntime(nav)
    obs = np.linspace(-1, 1, rt.obs_dim).astype(np.float32)
    peer.publish(obs)
    peer.spin_until(lambda: any(lab == "action" for lab, _, _ in peer.actions), 5, "an action")
    peer.spin(0.1)
    acted = [d for lab, d, _ in peer.actions if lab == "action"]
    # Timer mode: the same (latest) observation is stepped at every tick.
    assert len(acted) >= 3
    for a in acted:
        assert ((a >= np.asarray(rt.action_spec["low"])) & (a <= rt.action_spec["high"])).all()
    want = [np.asarray(rt.step(obs), np.float32).reshape(-1) for _ in acted[:3]]
    np.testing.assert_array_equal(np.stack(acted[:3]), np.stack(want))
    pairs = [(t.linear.x, t.angular.z) for t in twists]
    expected = [(2.0 * float(a[0]), float(a[1])) for a in acted]
    for p in expected[:3]:
        assert p in pairs
    # The observation goes stale: the safe action, mapped to cmd_vel too.
    peer.spin(0.5)
    assert peer.actions[-1][0] == "safe" and peer.actions[-1][1].tolist() == [0.0, 0.5]
    assert (twists[-1].linear.x, twists[-1].angular.z) == (0.0, 0.5)


def test_empty_lists_in_a_params_file_mean_the_defaults(procs, peer, tmaze, tmp_path):
    """ROS reads `[]` in a params file as "not set"; the node takes the default."""
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    safe_action: []\n    providers: []\n"
                      "    qos:\n      observation_reliability: reliable\n")
    node = procs("policy_node", {"model_path": str(tmaze), "obs_timeout_ms": 0.0},
                 files=[params])
    peer.wait_for_node()
    assert peer.send(np.full(PolicyRuntime(tmaze).obs_dim, np.nan))[1].tolist() == [0.0]
    assert "providers ['CPUExecutionProvider']" in node.text()


def test_sim_loop_runs_the_installed_node_and_bridge_and_reports_latency(ws, tmaze, tmp_path):
    """`python -m dnc_policy_tools.sim_loop` (what `make demo` runs): the colcon install's
    executables, the config files, the bridge's round trips and the node's diagnostics."""
    from dnc_policy_tools.sim_loop import describe, main, run_sim_loop

    s = run_sim_loop(tmaze, episodes=3, seed=4, install=ws.install, log_dir=tmp_path / "logs")
    want = offline_episodes(tmaze, 3, seed=4)
    assert [e["return"] for e in s["per_episode"]] == pytest.approx([w["return"] for w in want])
    ticks = sum(e["length"] for e in s["per_episode"])
    assert s["round_trip_us"]["n"] == ticks and 0 < s["round_trip_us"]["p50"] < 1e6
    assert s["policy_diagnostics"]["ticks"] == str(ticks)
    assert float(s["policy_diagnostics"]["step_latency_p50_us"]) > 0
    assert "round trip p50" in describe(s) and "step latency p50" in describe(s)
    assert (tmp_path / "logs" / "policy_node.log").read_text().count("active: acting") == 1
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "missing.onnx")])
    assert e.value.code == 2


def test_package_xml_declares_what_the_package_imports():
    """rosdep installs what package.xml lists: every ROS package imported by the node,
    bridge, tools and launch files must be there."""
    import ast
    import xml.etree.ElementTree as ET

    ros_packages = {"rclpy", "rcl_interfaces", "lifecycle_msgs", "std_msgs", "std_srvs",
                    "geometry_msgs", "diagnostic_msgs", "sensor_msgs", "ament_index_python",
                    "launch", "launch_ros", "dnc_policy"}
    for pkg in (PKG, TOOLS):
        declared = {e.text for e in ET.parse(pkg / "package.xml").getroot()
                    if e.tag in ("depend", "exec_depend")}
        imported = set()
        for f in list((pkg / pkg.name).glob("*.py")) + list((pkg / "launch").glob("*.py")):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module.split(".")[0])
                elif isinstance(node, ast.Import):
                    imported.update(a.name.split(".")[0] for a in node.names)
        used = imported & ros_packages
        assert {"rclpy", "launch_ros", "diagnostic_msgs"} <= used, pkg.name  # the scan works
        assert used <= declared, f"{pkg.name}: not in package.xml: {sorted(used - declared)}"
        assert "python3-numpy" in declared and "numpy" in imported, pkg.name
    robot = {e.text for e in ET.parse(PKG / "package.xml").getroot() if e.tag == "exec_depend"}
    assert "lifecycle_msgs" in robot  # rclpy.lifecycle's services
    assert "dnc_policy" in {e.text for e in ET.parse(TOOLS / "package.xml").getroot()}


def test_cmd_vel_stamped(procs, peer, models):
    from geometry_msgs.msg import TwistStamped

    nav = models("nav").onnx
    procs("policy_node", node_params(nav, **{"cmd_vel.enabled": True, "cmd_vel.stamped": True,
                                             "cmd_vel.frame_id": "base_footprint"}))
    got = []
    peer.node.create_subscription(TwistStamped, "cmd_vel", got.append, 10)
    peer.wait_for_node()
    label, action = peer.send(np.zeros(PolicyRuntime(nav).obs_dim))
    peer.spin_until(lambda: got, 5, "a TwistStamped")
    assert got[0].header.frame_id == "base_footprint" and got[0].header.stamp.sec > 0
    assert (got[0].twist.linear.x, got[0].twist.angular.z) == (float(action[0]), float(action[1]))


def test_realtime_bridge_steps_at_its_rate_with_the_last_action_held(procs, tmaze, tmp_path):
    procs("policy_node", node_params(tmaze))
    summary = tmp_path / "rt.json"
    t0 = time.monotonic()
    bridge = procs("sim_bridge", {"model_path": str(tmaze), "episodes": 3, "mode": "realtime",
                                  "rate_hz": 20.0, "summary_path": str(summary)})
    assert bridge.wait(120) == 0, bridge.text()
    s = json.loads(summary.read_text())
    assert s["mode"] == "realtime" and s["episodes"] == 3 and s["error"] == ""
    steps = sum(e["length"] for e in s["per_episode"])
    assert steps >= 3 * 5  # at least the shortest path of each episode
    assert time.monotonic() - t0 >= steps / 20.0  # paced by rate_hz, not by the policy
    assert s["round_trip_us"] == {}  # no lock-step pairing in realtime mode


# -- executors, idle CPU, the freshest observation -------------------------------------------
def policy_diag(peer) -> dict:
    """The values of the last /diagnostics status of the policy node."""
    for msg in reversed(peer.diagnostics):
        for st in msg.status:
            if st.name.startswith("dnc_policy"):
                return {kv.key: kv.value for kv in st.values}
    return {}


def cpu_percent(pid: int, seconds: float, spin=None) -> float:
    """The process's CPU use (% of one core, /proc/<pid>/stat) over ``seconds``."""
    from dnc_policy_tools.bench import cpu_seconds

    c0, t0 = cpu_seconds(pid), time.monotonic()
    if spin is not None:
        spin(seconds)
    else:
        time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


IDLE_CPU_LIMIT = 15.0  # % of a core; an idle node uses ~1% (a 50 Hz watchdog timer)


@pytest.mark.parametrize("executor", ["events", "single_threaded", "auto"])
def test_the_executor_parameter_acts_then_idles_after_its_peer_leaves(procs, tmaze, executor):
    """The node on each executor (`auto`, the default, is `events` where rclpy has it)
    answers as the offline runtime; idle, with its peer
    present and after the peer has gone, it uses almost no CPU (rclpy 9's
    EventsExecutor busy-waits in spin() and in spin_once() without a timeout: the node
    never calls those); SIGINT still publishes the safe action (the EventsExecutor
    installs its own SIGINT/SIGTERM handlers: the node puts its own back)."""
    import importlib.util
    import subprocess
    import sys

    node = procs("policy_node", node_params(tmaze, executor=executor,
                                            diagnostics_period_s=0.2))
    rt = PolicyRuntime(tmaze)
    peer = Peer()
    try:
        peer.wait_for_node()
        for o in env_observations("dnc/TMaze-v0", rt.contract["env"]["kwargs"], 10, seed=4):
            label, action = peer.send(o)
            assert label == "action"
            assert action.tolist() == np.asarray(rt.step(o), np.float32).reshape(-1).tolist()
        peer.spin_until(lambda: policy_diag(peer).get("ticks") == "10", 10, "diagnostics")
        d = policy_diag(peer)
        used = executor if executor != "auto" else (
            "events" if importlib.util.find_spec("rclpy.experimental") else "single_threaded")
        assert d["executor"] == used
        assert d["obs_age_from"] == ("callback" if used == "events" else "dds_reception")
        refused = set_parameter(peer, "executor", "single_threaded")
        assert not refused.successful and "read at start-up" in refused.reason
        present = cpu_percent(node.p.pid, 3.0, peer.spin)
    finally:
        peer.close()
    gone = cpu_percent(node.p.pid, 3.0)  # its only peer has left
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:  # the measure sees a busy process (also on this loaded machine)
        time.sleep(0.3)
        control = cpu_percent(busy.pid, 1.0)
    finally:
        busy.kill()
        busy.wait()
    print(f"{executor}: idle CPU {present:.1f}% with its peer, {gone:.1f}% after it left; "
          f"a busy loop {control:.0f}%")
    assert control > 2 * IDLE_CPU_LIMIT
    assert present < IDLE_CPU_LIMIT and gone < IDLE_CPU_LIMIT, (present, gone)
    peer = Peer("second_peer")
    try:
        peer.wait_for_node()
        # a round trip first: the peer seeing the node's writer does not mean the node's
        # writer has matched the peer's reader yet (discovery is not symmetric), and a
        # safe action sent before that match is lost
        assert peer.send(np.zeros(rt.obs_dim, np.float32))[0] == "action"
        n = len(peer.actions)
        node.p.send_signal(signal.SIGINT)
        peer.spin_until(lambda: len(peer.actions) > n, 10, "the safe action at SIGINT")
        assert peer.actions[n][0] == "safe"
        assert node.wait(15) == 0, node.text()
    finally:
        peer.close()
    assert "Traceback" not in node.text()


def set_parameter(peer, name: str, value: str):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    req = SetParameters.Request(parameters=[Parameter(name=name, value=ParameterValue(
        type=ParameterType.PARAMETER_STRING, string_value=value))])
    return peer.call(SetParameters, "/dnc_policy/set_parameters", req).results[0]


@pytest.mark.parametrize("executor,warned", [("events", 1), ("auto", 0)])
def test_without_the_events_executor_the_node_warns_once_and_runs_single_threaded(
        ws, peer, tmaze, tmp_path, executor, warned):
    """Humble's rclpy has no rclpy.experimental: made unimportable here, the node acts on
    rclpy's SingleThreadedExecutor; asked for `events` it logs one warning, under the
    default `auto` none."""
    import subprocess
    import sys

    from rosutil import ros_args

    code = ("import sys; sys.modules['rclpy.experimental'] = None; "
            "from dnc_policy.node import main; sys.exit(main())")
    log = tmp_path / "node.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-c", code,
             *ros_args(node_params(tmaze, executor=executor, diagnostics_period_s=0.2))],
            env=ws.env, stdout=f, stderr=subprocess.STDOUT)
    try:
        peer.wait_for_node()
        o = env_observations("dnc/TMaze-v0", {"length": 4}, 1, seed=6)[0]
        label, action = peer.send(o)
        assert label == "action"
        assert action.tolist() == np.asarray(PolicyRuntime(tmaze).step(o),
                                             np.float32).reshape(-1).tolist()
        peer.spin_until(lambda: policy_diag(peer).get("executor"), 10, "diagnostics")
        assert policy_diag(peer)["executor"] == "single_threaded"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    warnings = [ln for ln in text.splitlines() if "rclpy.experimental.EventsExecutor is not" in ln]
    assert len(warnings) == warned, text
    assert all("WARN" in w and "single_threaded" in w for w in warnings), text


def test_a_bad_executor_value_stops_the_node_at_start_up(procs, tmaze):
    node = procs("policy_node", node_params(tmaze, executor="multi_threaded"),
                 wait_active=False)
    assert node.wait(60) == 1
    assert ("start-up failed: parameter 'executor' = 'multi_threaded': expected one of "
            "auto, single_threaded, events") in node.text()


def random_observations(rt: PolicyRuntime, n: int, seed: int) -> np.ndarray:
    """Distinct observations (each gives its own critic value: which one a tick used can
    be told from the value)."""
    return np.random.default_rng(seed).uniform(-1, 1, (n, rt.obs_dim)).astype(np.float32)


def wait_for_values(peer, n: int, timeout: float = 10.0) -> None:
    peer.spin_until(lambda: len(peer.values) >= n, timeout, f"{n} debug values")


def test_timer_mode_acts_on_the_newest_of_a_burst_and_reports_the_drops_and_ages(
        procs, peer, tmaze):
    """Timer mode at 4 Hz; bursts of 20 observations between two ticks: every tick acts
    on the newest observation held (the same sequence of values as the offline runtime
    on those observations), the other 19 of each burst are counted as dropped (replaced
    in the subscription's depth-1 queue or in the node's handoff), and the age of a held
    observation grows by a tick at each tick."""
    rate, bursts, size = 4.0, 3, 20
    # rclpy's own executor: it hands the callback the message info, so drops in the DDS
    # queue are counted and ages start at DDS reception (the EventsExecutor, which the
    # default `auto` picks here, cannot: `n/a`, from the callback).
    procs("policy_node", node_params(tmaze, tick_mode="timer", rate_hz=rate,
                                     diagnostics_period_s=0.1, executor="single_threaded",
                                     **{"qos.depth": 1, "debug.enabled": True}))
    peer.wait_for_node()
    rt = PolicyRuntime(tmaze)
    prime = random_observations(rt, 1, seed=10)[0]
    burst = random_observations(rt, bursts * size, seed=11).reshape(bursts, size, -1)

    def policy_actions() -> int:
        return sum(lab == "action" for lab, _, _ in peer.actions)

    held = []  # (index in peer.actions from which this observation is held, observation)
    held.append((len(peer.actions), prime))
    peer.publish(prime)
    peer.spin_until(lambda: policy_actions() >= 1, 10, "the first policy action")
    for b in range(bursts):
        n = len(peer.actions)
        peer.spin_until(lambda n=n: len(peer.actions) > n, 10, "a tick")  # just after a tick
        held.append((len(peer.actions), burst[b, -1]))
        for o in burst[b]:
            peer.publish(o)
        k = policy_actions()
        peer.spin_until(lambda k=k: policy_actions() >= k + 2, 10, "two ticks on the burst")
    acted = [(i, d) for i, (lab, d, _) in enumerate(peer.actions) if lab == "action"]
    wait_for_values(peer, len(acted))
    for j, (i, data) in enumerate(acted):
        obs = [o for start, o in held if start <= i][-1]
        want = rt.step(obs)
        assert data.tolist() == np.asarray(want, np.float32).reshape(-1).tolist(), j
        assert peer.values[j] == pytest.approx(float(rt.outputs["value"][0]), abs=1e-6), j
    peer.spin_until(lambda: policy_diag(peer).get("ticks") == str(len(acted)), 10,
                    "diagnostics after the last tick")
    d = policy_diag(peer)
    assert d["obs_dropped"] == str(bursts * (size - 1)), d
    assert int(d["obs_overwritten"]) + int(d["obs_dropped_in_queue"]) == bursts * (size - 1)
    p50, p99, amax = (float(d[f"obs_age_{k}_us"]) for k in ("p50", "p99", "max"))
    assert 0 < p50 <= p99 <= amax < 2.5e6, d
    assert amax >= 0.8e6 / rate, d  # a second tick on a held observation: a tick older


def test_on_observation_mode_drops_a_backlog_and_acts_on_the_newest(procs, peer, tmaze):
    """A burst of 100 observations, published faster than the node ticks: with the
    default depth 1 the node acts on a subset in order, always the newest waiting one,
    and on the last of the burst (the offline runtime on the acted-on sequence gives
    every value); each one it skipped is counted in obs_dropped."""
    procs("policy_node", node_params(tmaze, diagnostics_period_s=0.1,
                                     executor="single_threaded",  # counts queue drops
                                     **{"qos.depth": 1, "debug.enabled": True}))
    peer.wait_for_node()
    rt = PolicyRuntime(tmaze)
    prime = random_observations(rt, 1, seed=20)[0]
    burst = random_observations(rt, 100, seed=21)
    assert peer.send(prime)[0] == "action"
    rt.step(prime)
    wait_for_values(peer, 1)
    assert peer.values[0] == pytest.approx(float(rt.outputs["value"][0]), abs=1e-6)
    for o in burst:
        peer.publish(o)
    last = len(peer.values)
    while True:  # until the node is quiet
        peer.spin(0.5)
        if len(peer.values) == last:
            break
        last = len(peer.values)
    # Which observation each tick used, from its value: the first one after the last used
    # that gives it from the offline state (observations are random: values differ).
    used = []
    for v in peer.values[1:]:
        snap = rt.snapshot()
        for j in range((used[-1] + 1) if used else 0, len(burst)):
            rt.restore(snap)
            rt.step(burst[j])
            if float(rt.outputs["value"][0]) == pytest.approx(v, abs=1e-6):
                used.append(j)
                break
        else:
            raise AssertionError(f"no observation after {used[-1:]} gives the value {v}")
    assert used[-1] == len(burst) - 1, "the last tick did not act on the newest observation"
    assert len(used) < len(burst), "no observation was dropped: the backlog was worked off"
    label, data, _ = peer.actions[-1]
    assert label == "action"
    assert data.tolist() == np.asarray(rt.outputs["action"], np.float32).reshape(-1).tolist()
    peer.spin_until(lambda: policy_diag(peer).get("ticks") == str(1 + len(used)), 10,
                    "diagnostics after the last tick")
    d = policy_diag(peer)
    assert d["obs_dropped"] == d["obs_dropped_in_queue"] == str(len(burst) - len(used)), d
    assert d["obs_overwritten"] == "0" and d["obs_age_from"] == "dds_reception"
    p50, p99, amax = (float(d[f"obs_age_{k}_us"]) for k in ("p50", "p99", "max"))
    assert 0 < p50 <= p99 <= amax < 1e6, d


def test_lockstep_sim_on_the_events_executor_matches_the_offline_runtime(procs, tmaze,
                                                                          tmp_path):
    """Node and bridge both on the EventsExecutor (services, clients, timers,
    subscriptions): the same episodes as the offline runtime."""
    procs("policy_node", node_params(tmaze, executor="events"))
    summary = tmp_path / "events.json"
    bridge = procs("sim_bridge", {"model_path": str(tmaze), "episodes": 3, "seed": 2,
                                  "executor": "events", "summary_path": str(summary),
                                  "record_actions": True})
    assert bridge.wait(120) == 0, bridge.text()
    got = json.loads(summary.read_text())
    want = offline_episodes(tmaze, 3, seed=2)
    assert got["error"] == "" and got["episodes"] == 3
    assert [e["actions"] for e in got["per_episode"]] == [w["actions"] for w in want]
