"""``sim_bridge``: a Gymnasium env on the other side of the policy node, over real DDS.

    sim_bridge --ros-args -p model_path:=policy.onnx -p episodes:=20      # env from the model
    sim_bridge --ros-args -p env_id:=dnc/TMaze-v0 -p env_kwargs:='{"length": 10}'

Publishes the env's observations (flattened as in training: discrete values one-hot) on
``observation`` and applies what arrives on ``action``:

- ``mode: lockstep`` (default, deterministic): one env step per policy action; the next
  observation is published when the step is done. Safe actions (``layout.dim[0].label ==
  "safe"``) are not policy decisions and are not stepped; they are counted.
- ``mode: realtime``: the env steps at ``rate_hz`` with the last action held (safe
  actions included), as a robot would.

At each episode start (episode ``k`` is reset with seed ``seed + k``, as in
``training.evaluate``) it calls the policy's ``reset_memory`` service and waits for the
answer before the first observation goes out. It publishes ``~/episode_return``
(std_msgs/Float32) and ``~/episode_success`` (std_msgs/Bool) at each episode end, and after
``episodes`` episodes prints a summary, writes it to ``summary_path`` (JSON) if set, and
exits (status 0; 1 if the policy stopped answering).

Needs Gymnasium and the modules in ``env_modules`` that register the env ids (``sim`` for
this project's envs): a workstation tool, not part of the robot's install.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from std_msgs.msg import Bool, Float32, Float32MultiArray
from std_srvs.srv import Trigger

from dnc_policy.files import atomic_write
from sim.spaces import ObsFlattener, to_env_actions
from dnc_policy.node import (
    SAFE_LABEL,
    array_msg,
    executor_for,
    init_ros,
    qos_profile,
    spin_until,
)
from dnc_policy.settings import RELIABILITIES, Param, SettingsError, check_names, parse_executor

BRIDGE_PARAMETERS: dict[str, Param] = {
    "env_id": Param("", "Gymnasium env id; empty: the env the model was trained on"),
    "env_kwargs": Param("", "JSON object of env keyword arguments; empty: the model's"),
    "model_path": Param("", "policy.onnx to read the env id and kwargs from"),
    "env_modules": Param(["sim"], "modules imported first (they register env ids)",
                         dynamic=True),
    "episodes": Param(20, "episodes before the summary and exit (0: run forever)"),
    "seed": Param(0, "episode k is reset with seed + k"),
    "mode": Param("lockstep", "lockstep (one step per policy action) or realtime"),
    "rate_hz": Param(50.0, "env steps per second in realtime mode"),
    "reset_service": Param("dnc_policy/reset_memory", "the policy node's reset service"),
    "qos.reliability": Param("reliable", "observation/action QoS: reliable or best_effort"),
    "qos.depth": Param(10, "QoS history depth"),
    "action_timeout_s": Param(10.0, "lockstep: no policy action for this long is an error"),
    "first_action_retry_s": Param(2.0, "lockstep, Humble only (no matched-publisher "
                                       "count): no answer to the first observation this "
                                       "soon: reset and send it again"),
    "wait_for_policy_s": Param(60.0, "how long to wait for the policy node to appear"),
    "summary_path": Param("", "write the summary (and per-episode details) here as JSON"),
    "record_actions": Param(False, "keep every action in the summary file"),
    "executor": Param("single_threaded", "single_threaded, events or auto, as the policy "
                                         "node's `executor` (events without an "
                                         "EventsExecutor: a warning and single_threaded)"),
}
FOREIGN = ("use_sim_time", "start_type_description_service")


def model_env(model_path: str) -> tuple[str, dict]:
    """The env id and kwargs recorded in a policy.onnx contract."""
    import onnxruntime as ort

    from dnc_policy.contract import ContractError, read_contract

    if not Path(model_path).is_file():
        raise SettingsError(f"parameter 'model_path' = {model_path!r}: no such file")
    try:
        sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ContractError(f"{model_path!r} is not a loadable ONNX model: {e}") from None
    env = read_contract(sess)["env"]
    return env["id"], dict(env.get("kwargs") or {})


class SimBridge(Node):
    def __init__(self):
        super().__init__("sim_bridge")
        for name, p in BRIDGE_PARAMETERS.items():
            self.declare_parameter(name, p.default, ParameterDescriptor(
                description=p.description, dynamic_typing=True))
        check_names([n for n in getattr(self, "_parameter_overrides", {})
                     if n not in FOREIGN and not n.startswith("qos_overrides.")],
                    BRIDGE_PARAMETERS)
        g = {n: p.default if (v := self.get_parameter(n).value) is None else v
             for n, p in BRIDGE_PARAMETERS.items()}
        self.p = g
        parse_executor(g["executor"])
        if g["mode"] not in ("lockstep", "realtime"):
            raise SettingsError(f"parameter 'mode' = {g['mode']!r}: expected lockstep or realtime")
        if g["qos.reliability"] not in RELIABILITIES:
            raise SettingsError(f"parameter 'qos.reliability' = {g['qos.reliability']!r}: "
                                f"expected one of {', '.join(RELIABILITIES)}")
        for name in ("episodes", "seed", "qos.depth"):
            if not isinstance(g[name], int) or isinstance(g[name], bool) or g[name] < 0:
                raise SettingsError(f"parameter {name!r} = {g[name]!r}: expected an integer >= 0")
        env_id, kwargs = g["env_id"], {}
        if g["model_path"]:
            mid, kwargs = model_env(g["model_path"])
            env_id = env_id or mid
        if g["env_kwargs"]:
            try:
                kwargs = json.loads(g["env_kwargs"])
            except json.JSONDecodeError as e:
                raise SettingsError(f"parameter 'env_kwargs' is not JSON: {e}") from None
            if not isinstance(kwargs, dict):
                raise SettingsError("parameter 'env_kwargs' must be a JSON object")
        if not env_id:
            raise SettingsError("set parameter 'env_id' or 'model_path' (the env comes from "
                                "the model's contract)")
        import gymnasium as gym

        for mod in g["env_modules"]:
            importlib.import_module(mod)
        if env_id not in gym.registry:
            raise SettingsError(f"parameter 'env_id' = {env_id!r} is not a registered env "
                                f"(env_modules imported: {list(g['env_modules'])})")
        self.env_id, self.env_kwargs = env_id, kwargs
        self.env = gym.make(env_id, **kwargs)
        # Observations flattened and actions converted exactly as in training (sim.spaces).
        try:
            self._flatten = ObsFlattener(self.env.observation_space)
        except ValueError as e:
            raise SettingsError(f"env {env_id}: {e}") from None
        qos = qos_profile(g["qos.reliability"] == "reliable", max(1, g["qos.depth"]))
        self.obs_pub = self.create_publisher(Float32MultiArray, "observation", qos)
        self.act_sub = self.create_subscription(Float32MultiArray, "action", self._on_action, qos)
        self.ret_pub = self.create_publisher(Float32, "~/episode_return", 10)
        self.succ_pub = self.create_publisher(Bool, "~/episode_success", 10)
        self.reset_client = self.create_client(Trigger, g["reset_service"])
        # The policy node's own figures (step latency, rejected inputs), for the summary.
        self.policy_status: dict[str, str] = {}
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.round_trips: list[float] = []  # lockstep: observation sent -> action received
        self._diagnostics_seen = 0
        self.lockstep = g["mode"] == "lockstep"
        self.done = False
        self.failed = ""
        self.episodes: list[dict] = []
        self.safe_ignored = 0
        self._phase = "waiting_for_policy"  # -> resetting -> running
        self._t0 = time.monotonic()
        self._ready_since = None
        self._k = 0
        self._obs = None
        self._waiting_since = None  # lockstep: published an observation, no action yet
        self._held = None  # realtime: the last action
        self._may_retry_first = False
        self._reset_since = 0.0
        self._first_sent = None  # when the current episode's first observation first went out
        period = 1.0 / float(g["rate_hz"]) if not self.lockstep else 0.05
        self._timer = self.create_timer(period, self._on_timer)
        self.get_logger().info(f"{env_id} {kwargs}: {g['episodes'] or 'endless'} episodes, "
                               f"{g['mode']}, seed {g['seed']}")

    # -- episodes ------------------------------------------------------------------------
    def _flat(self, obs) -> list:
        return self._flatten(np.asarray(obs)[None])[0].tolist()

    def _start_episode(self) -> None:
        obs, _ = self.env.reset(seed=int(self.p["seed"]) + self._k)
        self._obs = obs
        self._ep = {"episode": self._k, "seed": int(self.p["seed"]) + self._k, "return": 0.0,
                    "length": 0, "success": False, "actions": []}
        self._held = None
        self._first_sent = None
        self._reset_policy()

    def _reset_policy(self) -> None:
        self._phase = "resetting"
        self._reset_since = time.monotonic()
        self.reset_client.call_async(Trigger.Request()).add_done_callback(self._on_reset_done)

    def _on_reset_done(self, future) -> None:
        if self._phase != "resetting":  # an answer after the run ended (a deadline passed)
            return
        res = future.result()
        if res is None or not res.success:
            self._fail(f"reset_memory failed: {getattr(res, 'message', 'no answer')}")
            return
        self._phase = "running"
        self._publish_obs()
        if self._first_sent is None:
            self._first_sent = self._waiting_since

    def _publish_obs(self) -> None:
        self.obs_pub.publish(array_msg(self._flat(self._obs), "observation"))
        self._waiting_since = time.monotonic()

    def _step(self, flat) -> None:
        ep = self._ep
        if self.p["record_actions"]:
            ep["actions"].append([float(x) for x in flat])
        action = to_env_actions(np.asarray(flat, np.float32)[None], self.env.action_space)[0]
        obs, reward, term, trunc, info = self.env.step(action)
        ep["return"] += float(reward)
        ep["length"] += 1
        self._obs = obs
        if term or trunc:
            ep["success"] = bool(info.get("is_success", False))
            ep["terminated"] = bool(term)
            self.ret_pub.publish(Float32(data=float(ep["return"])))
            self.succ_pub.publish(Bool(data=ep["success"]))
            self.episodes.append(ep)
            self._k += 1
            self._waiting_since = None
            if self.p["episodes"] and self._k >= self.p["episodes"]:
                self._finish()
            else:
                self._start_episode()
        elif self.lockstep:
            self._publish_obs()

    # -- callbacks -----------------------------------------------------------------------
    def _on_action(self, msg: Float32MultiArray) -> None:
        if self._phase != "running" or self.done:
            return
        safe = bool(msg.layout.dim) and msg.layout.dim[0].label == SAFE_LABEL
        if self.lockstep:
            if safe:
                self.safe_ignored += 1
                return
            if self._waiting_since is None:
                return  # not an answer to an observation of ours
            self.round_trips.append(time.monotonic() - self._waiting_since)
            self._waiting_since = None
            self._step(np.asarray(msg.data, np.float32))
        else:
            self._held = np.asarray(msg.data, np.float32)

    def _on_timer(self) -> None:
        if self.done:
            return
        now = time.monotonic()
        if self._phase == "finishing":
            # One more /diagnostics message from the policy node (its figures cover the
            # whole run), or give up waiting after 2.5 s.
            if self._diagnostics_seen > self._diagnostics_at_end or now - self._end > 2.5:
                self._final()
            return
        if self._phase == "waiting_for_policy":
            # Subscription.get_publisher_count (matched writers) is Jazzy+; Humble has
            # only the graph count, and there the first answer may be lost (see below).
            matched = getattr(self.act_sub, "get_publisher_count", None)
            self._may_retry_first = matched is None
            ready = (self.reset_client.service_is_ready()
                     and self.obs_pub.get_subscription_count() > 0
                     and (matched() if matched else self.count_publishers("action")) > 0)
            if ready:
                # Let the other direction's endpoints match too (volatile QoS drops
                # what is published before the match).
                self._ready_since = self._ready_since or now
                if now - self._ready_since >= 0.5:
                    self._start_episode()
            elif now - self._t0 > float(self.p["wait_for_policy_s"]):
                self._fail(f"no policy node after {self.p['wait_for_policy_s']} s (needs a "
                           f"subscriber on 'observation', a publisher on 'action' and the "
                           f"service {self.p['reset_service']!r})")
            return
        if self._phase == "resetting":
            if now - self._reset_since > float(self.p["action_timeout_s"]):
                self._fail(f"no answer from {self.p['reset_service']!r} within "
                           f"{self.p['action_timeout_s']} s")
            return
        if self.lockstep:
            if (self._waiting_since is not None and self._may_retry_first
                    and not self.round_trips
                    and now - self._waiting_since > float(self.p["first_action_retry_s"])
                    and now - self._first_sent < float(self.p["action_timeout_s"])):
                # An action published before the node's publisher had matched our
                # subscription is lost (volatile QoS). Resetting the memory and sending
                # the episode's first observation again gives the same tick.
                self.get_logger().info("no answer to the episode's first observation yet: "
                                       "resetting the memory and sending it again")
                self._reset_policy()
            elif (self._waiting_since is not None
                    and now - self._waiting_since > float(self.p["action_timeout_s"])):
                self._fail(f"no policy action within {self.p['action_timeout_s']} s of an "
                           "observation")
        else:
            if self._held is not None:
                self._step(self._held)
            if not self.done and self._phase == "running":
                self._publish_obs()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name.endswith(": policy"):
                self.policy_status = {kv.key: kv.value for kv in st.values}
                self._diagnostics_seen += 1

    # -- the end -------------------------------------------------------------------------
    def summary(self) -> dict:
        eps = self.episodes
        rtt = np.asarray(self.round_trips) * 1e6
        return {
            "env": self.env_id, "env_kwargs": self.env_kwargs, "mode": self.p["mode"],
            "seed": self.p["seed"], "episodes": len(eps),
            "success_rate": float(np.mean([e["success"] for e in eps])) if eps else 0.0,
            "mean_return": float(np.mean([e["return"] for e in eps])) if eps else 0.0,
            "mean_length": float(np.mean([e["length"] for e in eps])) if eps else 0.0,
            "safe_actions_ignored": self.safe_ignored, "error": self.failed,
            "round_trip_us": ({"p50": float(np.percentile(rtt, 50)),
                               "p99": float(np.percentile(rtt, 99)),
                               "max": float(rtt.max()), "n": int(rtt.size)} if rtt.size else {}),
            "policy_diagnostics": self.policy_status,
            "per_episode": eps,
        }

    def _finish(self) -> None:
        self._phase = "finishing"
        self._end = time.monotonic()
        self._diagnostics_at_end = self._diagnostics_seen

    def _final(self) -> None:
        self.done = True
        s = self.summary()
        print(f"sim_bridge: {s['episodes']} episodes of {s['env']}: success "
              f"{s['success_rate']:.3f}, mean return {s['mean_return']:.3f}, mean length "
              f"{s['mean_length']:.1f}" + (f", {self.safe_ignored} safe actions ignored"
                                           if self.safe_ignored else ""), flush=True)
        if s["round_trip_us"]:
            r = s["round_trip_us"]
            print(f"sim_bridge: observation -> action round trip p50 {r['p50']:.0f} us, "
                  f"p99 {r['p99']:.0f} us over {r['n']} ticks", flush=True)
        d = self.policy_status
        if d:
            print(f"sim_bridge: policy node step latency p50 {d.get('step_latency_p50_us')} us, "
                  f"p99 {d.get('step_latency_p99_us')} us, {d.get('ticks')} ticks, "
                  f"{d.get('rejected_inputs')} rejected inputs, providers {d.get('providers')}",
                  flush=True)
        if self.p["summary_path"]:
            text = json.dumps(s, indent=1).encode()
            atomic_write(self.p["summary_path"], lambda f: f.write(text))

    def _fail(self, why: str) -> None:
        self.failed = why
        self.get_logger().error(why)
        self._finish()


def main(args=None) -> int:
    stopping = init_ros(args)
    try:
        bridge = SimBridge()
    except (SettingsError, ValueError) as e:
        print(f"sim_bridge: error: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor, _ = executor_for(bridge, stopping)
    executor.add_node(bridge)
    try:
        spin_until(executor, lambda: bridge.done or stopping)
    finally:
        executor.shutdown()
        bridge.destroy_node()
        rclpy.try_shutdown()
    return 1 if bridge.failed else 0


if __name__ == "__main__":
    sys.exit(main())
