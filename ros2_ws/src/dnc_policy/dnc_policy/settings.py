"""The policy node's parameters: one table, validated in plain Python.

The node declares every entry of :data:`POLICY_PARAMETERS` (with its description as the
parameter descriptor) and hands the values to :func:`parse_policy_settings`, which turns
them into a typed :class:`PolicySettings` or raises :class:`SettingsError` naming the
parameter, the value and what was expected. Nothing here imports rclpy, so the rules are
tested without ROS and read the same on Humble, Jazzy and Kilted.
"""

from __future__ import annotations

import array
import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

TICK_MODES = ("on_observation", "timer")
EXECUTORS = ("auto", "single_threaded", "events")
RELIABILITIES = ("best_effort", "reliable")
PROVIDER_NAMES = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class SettingsError(ValueError):
    """A parameter has a bad value (or a name no parameter has)."""


@dataclass(frozen=True)
class Param:
    default: Any
    description: str
    # Array parameters whose default is empty are declared dynamically typed (an empty
    # list has no element type to infer on every ROS distribution); checked here instead.
    dynamic: bool = False


POLICY_PARAMETERS: dict[str, Param] = {
    "model_path": Param("", "policy.onnx written by `python -m export.onnx` (required)"),
    "autostart": Param(True, "configure and activate at start-up (false: wait for a "
                             "lifecycle manager)"),
    "executor": Param("auto", "what runs the node's callbacks: auto (events where this rclpy "
                              "has it, else single_threaded), single_threaded (rclpy's "
                              "SingleThreadedExecutor) or events "
                              "(rclpy.experimental.EventsExecutor; Jazzy from rclpy 7.1.4, "
                              "Kilted; where it is missing, a warning and single_threaded); "
                              "read at start-up"),
    "tick_mode": Param("on_observation", "on_observation: one tick per observation; timer: "
                                         "tick at rate_hz with the latest observation"),
    "rate_hz": Param(50.0, "tick rate in timer mode; in on_observation mode the rate at "
                           "which the watchdog checks and repeats the safe action"),
    "obs_timeout_ms": Param(500.0, "no valid observation for this long: publish the safe "
                                   "action until observations return (0 disables)"),
    "max_abs_obs": Param(1.0e6, "observations with any |value| above this are rejected"),
    "safe_action": Param([], "action published when the policy must not act (rejected "
                             "input, watchdog, deactivation); empty: zeros", dynamic=True),
    "providers": Param([], "onnxruntime execution providers in order of preference; "
                           "empty: TensorRT > CUDA > CPU, whichever is installed", dynamic=True),
    "threads": Param(1, "onnxruntime intra-op threads (1 suits a control loop)"),
    "deterministic": Param(True, "deterministic (mode/mean) actions; false: sample"),
    "seed": Param(0, "seed of the action sampler (deterministic: false)"),
    "reset_on_timeout": Param(False, "start a new episode when observations return after "
                                     "a watchdog timeout"),
    "cmd_vel.enabled": Param(False, "also publish cmd_vel (geometry_msgs/Twist) from a Box "
                                    "action"),
    "cmd_vel.linear_index": Param(0, "action element for linear.x"),
    "cmd_vel.angular_index": Param(1, "action element for angular.z"),
    "cmd_vel.linear_scale": Param(1.0, "linear.x = scale * action[linear_index]"),
    "cmd_vel.angular_scale": Param(1.0, "angular.z = scale * action[angular_index]"),
    "cmd_vel.stamped": Param(False, "publish geometry_msgs/TwistStamped instead of Twist"),
    "cmd_vel.frame_id": Param("base_link", "header.frame_id of a TwistStamped"),
    "qos.observation_reliability": Param("best_effort", "observation subscription: "
                                                        "best_effort (sensor data; matches "
                                                        "both kinds of publisher) or reliable"),
    "qos.action_reliability": Param("reliable", "action and cmd_vel publishers: reliable "
                                                "(matches both kinds of subscriber) or "
                                                "best_effort"),
    "qos.depth": Param(1, "QoS history depth (keep last) of the observation subscription "
                          "and the action publishers; 1: only the newest observation waits, "
                          "a backlog is dropped, not acted on late"),
    "snapshot.path": Param("", "file the memory is saved to (atomically) and restored from "
                               "at start; empty: no snapshots"),
    "snapshot.period_s": Param(1.0, "seconds between snapshots while active (0: only on "
                                    "deactivate and shutdown)"),
    "diagnostics_period_s": Param(1.0, "seconds between /diagnostics messages"),
    "debug.enabled": Param(False, "publish ~/debug/value and the memory's usage and "
                                  "read/write weights each tick"),
    # Real-time knobs (docs/JETSON.md), applied at activate; a refusal by the OS is a
    # warning, not a failure.
    "realtime.cpu_affinity": Param([], "CPU ids the node's executor thread (every tick) "
                                       "runs on, e.g. [3] for an isolated core; empty: "
                                       "off", dynamic=True),
    "realtime.sched_fifo_priority": Param(0, "SCHED_FIFO priority 1-99 of the executor "
                                             "thread (needs CAP_SYS_NICE or an rtprio "
                                             "limit); 0: off"),
    "realtime.mlockall": Param(False, "lock every page of the process in RAM "
                                      "(mlockall(MCL_CURRENT | MCL_FUTURE); needs CAP_IPC_LOCK "
                                      "or `ulimit -l unlimited`)"),
}

MAX_CPU_ID = 65535  # beyond any Linux build (NR_CPUS <= 8192)
MAX_FIFO_PRIORITY = 99  # Linux's SCHED_FIFO range is 1-99


@dataclass(frozen=True)
class CmdVelMap:
    linear_index: int
    angular_index: int
    linear_scale: float
    angular_scale: float
    stamped: bool = False
    frame_id: str = "base_link"


@dataclass(frozen=True)
class PolicySettings:
    model_path: str
    autostart: bool
    tick_mode: str
    rate_hz: float
    obs_timeout_s: float  # 0: no watchdog
    max_abs_obs: float
    safe_action: tuple[float, ...]  # empty: zeros (checked against the model at configure)
    providers: tuple[str, ...] | None  # None: automatic
    threads: int
    deterministic: bool
    seed: int
    reset_on_timeout: bool
    cmd_vel: CmdVelMap | None
    obs_reliable: bool
    action_reliable: bool
    qos_depth: int
    snapshot_path: str
    snapshot_period_s: float
    diagnostics_period_s: float
    debug: bool
    cpu_affinity: tuple[int, ...] = ()  # empty: off
    fifo_priority: int = 0  # 0: off
    mlockall: bool = False
    executor: str = "auto"


def check_names(given: Iterable[str], known: Iterable[str], what: str = "parameter") -> None:
    """SettingsError for a name in ``given`` that is not in ``known`` (a typo in a params
    file would otherwise be ignored silently)."""
    known = list(known)
    for name in given:
        if name not in known:
            close = ([k for k in known if k.lower().startswith(str(name).lower())]
                     or difflib.get_close_matches(name, known, n=1))
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingsError(f"unknown {what} {name!r}{hint}; known: {', '.join(known)}")


def _type(name: str, value, kinds, expected: str):
    if isinstance(value, bool) and bool not in kinds:
        raise SettingsError(f"parameter {name!r} = {value!r}: expected {expected}")
    if not isinstance(value, kinds):
        raise SettingsError(f"parameter {name!r} = {value!r}: expected {expected}")
    return value


def _number(name: str, value, low: float | None = None, low_open: bool = False) -> float:
    v = float(_type(name, value, (int, float), "a number"))
    if math.isnan(v):
        raise SettingsError(f"parameter {name!r} is NaN: expected a number")
    if low is not None and (v <= low if low_open else v < low):
        raise SettingsError(f"parameter {name!r} = {value!r}: expected a number "
                            f"{'>' if low_open else '>='} {low}")
    return v


def _int(name: str, value, low: int) -> int:
    v = _type(name, value, (int,), "an integer")
    if v < low:
        raise SettingsError(f"parameter {name!r} = {value!r}: expected an integer >= {low}")
    return int(v)


def _int_in(name: str, value, low: int, high: int, expected: str) -> int:
    v = _type(name, value, (int,), expected)
    if not low <= v <= high:
        raise SettingsError(f"parameter {name!r} = {value!r}: expected {expected}")
    return int(v)


def _cpu_ids(value) -> tuple[int, ...]:
    """``realtime.cpu_affinity``: a list of CPU ids (an ``array.array`` when set through
    the parameter service), sorted and without repeats; empty: off."""
    name = "realtime.cpu_affinity"
    expected = f"a list of CPU ids (integers from 0 to {MAX_CPU_ID})"
    if not isinstance(value, (list, tuple, array.array)) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= MAX_CPU_ID
            for c in value):
        shown = list(value) if isinstance(value, array.array) else value
        raise SettingsError(f"parameter {name!r} = {shown!r}: expected {expected}; empty: off")
    return tuple(sorted({int(c) for c in value}))


def _choice(name: str, value, choices) -> str:
    v = _type(name, value, (str,), f"one of {', '.join(choices)}")
    if v not in choices:
        raise SettingsError(f"parameter {name!r} = {value!r}: expected one of "
                            f"{', '.join(choices)}")
    return v


def parse_executor(value) -> str:
    """The ``executor`` parameter, checked (the node reads it before configure: the
    executor must exist to serve the lifecycle services)."""
    return _choice("executor", value, EXECUTORS)


def parse_policy_settings(values: dict[str, Any]) -> PolicySettings:
    """Typed, validated settings from ``{parameter name: value}`` (defaults for what is
    missing). Raises SettingsError naming the first bad parameter."""
    check_names(values, POLICY_PARAMETERS)
    v = {k: values.get(k, p.default) for k, p in POLICY_PARAMETERS.items()}
    model = _type("model_path", v["model_path"], (str,), "a path")
    if not model:
        raise SettingsError("parameter 'model_path' is not set: expected the path of a "
                            "policy.onnx written by `python -m export.onnx`")
    safe = v["safe_action"]
    if not isinstance(safe, (list, tuple)) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in safe):
        raise SettingsError(f"parameter 'safe_action' = {safe!r}: expected a list of numbers")
    providers = v["providers"]
    if not isinstance(providers, (list, tuple)) or not all(isinstance(p, str) for p in providers):
        raise SettingsError(f"parameter 'providers' = {providers!r}: expected a list of "
                            f"provider names ({', '.join(PROVIDER_NAMES)})")
    check_names(providers, PROVIDER_NAMES, "execution provider")
    cmd = None
    if _type("cmd_vel.enabled", v["cmd_vel.enabled"], (bool,), "true or false"):
        cmd = CmdVelMap(_int("cmd_vel.linear_index", v["cmd_vel.linear_index"], 0),
                        _int("cmd_vel.angular_index", v["cmd_vel.angular_index"], 0),
                        _number("cmd_vel.linear_scale", v["cmd_vel.linear_scale"]),
                        _number("cmd_vel.angular_scale", v["cmd_vel.angular_scale"]),
                        _type("cmd_vel.stamped", v["cmd_vel.stamped"], (bool,), "true or false"),
                        _type("cmd_vel.frame_id", v["cmd_vel.frame_id"], (str,), "a frame id"))
    return PolicySettings(
        model_path=model,
        autostart=_type("autostart", v["autostart"], (bool,), "true or false"),
        tick_mode=_choice("tick_mode", v["tick_mode"], TICK_MODES),
        rate_hz=_number("rate_hz", v["rate_hz"], 0.0, low_open=True),
        obs_timeout_s=_number("obs_timeout_ms", v["obs_timeout_ms"], 0.0) / 1000.0,
        max_abs_obs=_number("max_abs_obs", v["max_abs_obs"], 0.0, low_open=True),
        safe_action=tuple(float(x) for x in safe),
        providers=tuple(providers) or None,
        threads=_int("threads", v["threads"], 1),
        deterministic=_type("deterministic", v["deterministic"], (bool,), "true or false"),
        seed=_int("seed", v["seed"], 0),
        reset_on_timeout=_type("reset_on_timeout", v["reset_on_timeout"], (bool,),
                               "true or false"),
        cmd_vel=cmd,
        obs_reliable=_choice("qos.observation_reliability", v["qos.observation_reliability"],
                             RELIABILITIES) == "reliable",
        action_reliable=_choice("qos.action_reliability", v["qos.action_reliability"],
                                RELIABILITIES) == "reliable",
        qos_depth=_int("qos.depth", v["qos.depth"], 1),
        snapshot_path=_type("snapshot.path", v["snapshot.path"], (str,), "a path"),
        snapshot_period_s=_number("snapshot.period_s", v["snapshot.period_s"], 0.0),
        diagnostics_period_s=_number("diagnostics_period_s", v["diagnostics_period_s"], 0.0,
                                     low_open=True),
        debug=_type("debug.enabled", v["debug.enabled"], (bool,), "true or false"),
        cpu_affinity=_cpu_ids(v["realtime.cpu_affinity"]),
        fifo_priority=_int_in("realtime.sched_fifo_priority", v["realtime.sched_fifo_priority"],
                              0, MAX_FIFO_PRIORITY, "0 (off) or a SCHED_FIFO priority from 1 "
                              f"to {MAX_FIFO_PRIORITY}"),
        mlockall=_type("realtime.mlockall", v["realtime.mlockall"], (bool,), "true or false"),
        executor=parse_executor(v["executor"]),
    )
