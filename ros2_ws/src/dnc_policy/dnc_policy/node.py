"""The ``dnc_policy`` lifecycle node: runs an exported policy and carries its memory.

    policy_node --ros-args -p model_path:=/path/policy.onnx        # autostart: active
    ros2 launch dnc_policy policy.launch.py model:=/path/policy.onnx

Interface (DESIGN.md §5; docs/ROS.md has every parameter):

- subscribes ``observation`` (std_msgs/Float32MultiArray, raw observation, flat);
- publishes ``action`` (std_msgs/Float32MultiArray; ``layout.dim[0].label`` is
  ``"action"`` for the policy's action and ``"safe"`` for the safe action) and, with
  ``cmd_vel.enabled``, ``cmd_vel`` (geometry_msgs/Twist);
- service ``~/reset_memory`` (std_srvs/Trigger): the next tick starts a new episode;
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): rate, step latency p50/p99,
  rejected inputs, watchdog state, snapshots;
- with ``debug.enabled``: ``~/debug/value`` (std_msgs/Float32) and ``~/debug/usage``,
  ``~/debug/write_weights``, ``~/debug/read_weights`` (Float32MultiArray) after each tick.

Lifecycle: configure reads and validates the parameters, loads the model (and restores a
memory snapshot); activate applies the real-time knobs (``realtime.*``: CPU affinity,
SCHED_FIFO, mlockall; a refusal is a warning) and starts acting; deactivate publishes the
safe action and stops; cleanup frees everything. ``autostart`` (default true) runs
configure and activate at start-up. SIGINT/SIGTERM: the safe action is published and the
memory saved before exit.

Only rclpy API common to Humble, Jazzy and Kilted is used. The decisions live in
:mod:`dnc_policy.controller` (plain Python, tested without ROS).
"""

from __future__ import annotations

import gc
import signal
import sys
import time
import traceback

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Float32, Float32MultiArray, MultiArrayDimension
from std_srvs.srv import Trigger

from .controller import PolicyController, Tick
from .realtime import apply_realtime
from .runtime import ContractError
from .settings import (
    POLICY_PARAMETERS,
    PolicySettings,
    SettingsError,
    check_names,
    parse_policy_settings,
)

NODE_NAME = "dnc_policy"
# Overrides every node accepts that are not ours.
FOREIGN_PARAMETERS = ("use_sim_time", "start_type_description_service")
FOREIGN_PREFIXES = ("qos_overrides.",)


def qos_profile(reliable: bool, depth: int) -> QoSProfile:
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT)


def array_msg(values, label: str, shape=None) -> Float32MultiArray:
    """A Float32MultiArray with a row-major layout (one dim per axis of ``shape``)."""
    msg = Float32MultiArray()
    shape = list(shape) if shape is not None else [len(values)]
    labels = [label] + [f"{label}_{i}" for i in range(1, len(shape))]
    stride = 1
    strides = []
    for size in reversed(shape):
        stride *= int(size)
        strides.append(stride)
    msg.layout.dim = [MultiArrayDimension(label=lb, size=int(s), stride=int(st))
                      for lb, s, st in zip(labels, shape, reversed(strides))]
    msg.data = [float(x) for x in values]
    return msg


class PolicyNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        for name, p in POLICY_PARAMETERS.items():
            # Dynamically typed, so a value of the wrong type reaches our validation at
            # configure (a clear error) instead of an exception at start-up; the expected
            # type is in the descriptor.
            self.declare_parameter(name, p.default, ParameterDescriptor(
                description=p.description, dynamic_typing=True,
                additional_constraints=f"default: {p.default!r}"))
        self.controller: PolicyController | None = None
        self.settings: PolicySettings | None = None
        self.finished = False  # the lifecycle reached "finalized": the process may end
        self._entities: list = []
        self._reset_srv = self.create_service(Trigger, "~/reset_memory", self._on_reset)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Parameters are read at configure: refuse changes while a model is loaded (they
        would be silently ignored otherwise)."""
        if self.controller is not None:
            names = ", ".join(p.name for p in params)
            return SetParametersResult(
                successful=False,
                reason=f"{names}: parameters are read at configure; deactivate and clean up "
                       "the node first, then set them and configure again")
        return SetParametersResult(successful=True)

    # -- lifecycle -----------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            overrides = getattr(self, "_parameter_overrides", {})
            check_names([n for n in overrides if n not in FOREIGN_PARAMETERS
                         and not n.startswith(FOREIGN_PREFIXES)], POLICY_PARAMETERS)
            # A params file's `[]` arrives as "not set" (None): the default, as documented.
            values = {n: v for n in POLICY_PARAMETERS
                      if (v := self.get_parameter(n).value) is not None}
            self.settings = s = parse_policy_settings(values)
            self.controller = PolicyController(s, time.monotonic(), self._log)
            self._create_entities(s)
        except (SettingsError, ContractError, ValueError, FileNotFoundError) as e:
            self.get_logger().error(f"configure failed: {e}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        except Exception as e:  # rclpy would swallow it without a word
            self.get_logger().error(f"configure failed: {type(e).__name__}: {e}\n"
                                    f"{traceback.format_exc()}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        c = self.controller
        core = c.contract.get("core", {})
        self.get_logger().info(
            f"configured: {s.model_path} ({core.get('kind', '?')} core, obs {c.runtime.obs_dim}, "
            f"action {c.runtime.action_spec['kind']}, trained on {c.contract['env']['id']}), "
            f"providers {c.runtime.providers}, tick {s.tick_mode}"
            + (f" at {s.rate_hz:g} Hz" if s.tick_mode == "timer" else "")
            + f", safe action {c.safe_action.tolist()}")
        return TransitionCallbackReturn.SUCCESS

    def _create_entities(self, s: PolicySettings) -> None:
        # Each entity is recorded as soon as it exists, so a failure half-way releases
        # what was made.
        def keep(entity):
            self._entities.append(entity)
            return entity

        c = self.controller
        out_qos = qos_profile(s.action_reliable, s.qos_depth)
        self._action_pub = keep(self.create_publisher(Float32MultiArray, "action", out_qos))
        self._cmd_pub = None
        if s.cmd_vel is not None:
            self._cmd_pub = keep(self.create_publisher(
                TwistStamped if s.cmd_vel.stamped else Twist, "cmd_vel", out_qos))
        self._diag_pub = keep(self.create_publisher(DiagnosticArray, "/diagnostics", 10))
        self._debug_pubs = {}
        if s.debug:
            self._debug_pubs["value"] = keep(self.create_publisher(Float32, "~/debug/value", 10))
            for name in c.debug_fields():
                if name != "value":
                    self._debug_pubs[name] = keep(self.create_publisher(
                        Float32MultiArray, f"~/debug/{name}", 10))
        # Timers on the steady clock, as the watchdog: with use_sim_time and a paused or
        # missing /clock, a ROS-time timer would stop and the watchdog with it.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer = keep(self.create_timer(1.0 / s.rate_hz, self._on_timer, clock=steady))
        self._diag_timer = keep(self.create_timer(s.diagnostics_period_s,
                                                  self._publish_diagnostics, clock=steady))
        self._obs_sub = keep(self.create_subscription(
            Float32MultiArray, "observation", self._on_observation,
            qos_profile(s.obs_reliable, s.qos_depth)))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._apply_realtime(self.settings)
        self.controller.activate(time.monotonic())
        self.get_logger().info("active: acting on observations")
        return TransitionCallbackReturn.SUCCESS

    def _apply_realtime(self, s: PolicySettings) -> None:
        """The real-time knobs, on this thread: the executor's, which runs every tick.
        At activate, after the model is loaded (a TensorRT engine build at SCHED_FIFO
        would starve the core). A refusal is a warning; the node acts without it."""
        result = apply_realtime(s.cpu_affinity, s.fifo_priority, s.mlockall)
        for line in result.warnings:
            self.get_logger().warning(line)
        if result.applied:
            self.get_logger().info(f"real-time: {result.describe()}")

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._publish(self.controller.deactivate())
        self.get_logger().info("inactive: safe action published, policy stopped")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: model unloaded")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        self.finished = True
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error("error processing: safe action published, model unloaded")
        self.stop()
        return TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Safe action out (if acting), final snapshot, everything released."""
        if self.controller is not None and self.controller.active:
            self._publish(self.controller.deactivate())
            # The process is about to go: let reliable subscribers acknowledge it first.
            for pub in (self._action_pub, self._cmd_pub):
                if pub is not None and self.settings.action_reliable:
                    pub.wait_for_all_acked(Duration(seconds=0.5))
        self._release()

    def _release(self) -> None:
        if self.controller is not None:
            self.controller.close()
            self.controller = None
        for e in self._entities:
            if e is None:
                continue
            if hasattr(e, "cancel"):
                e.cancel()
                self.destroy_timer(e)
            elif hasattr(e, "publish"):
                self.destroy_publisher(e)
            else:
                self.destroy_subscription(e)
        self._entities = []

    # -- callbacks -----------------------------------------------------------------------
    def _on_observation(self, msg: Float32MultiArray) -> None:
        c = self.controller
        if c is None:
            return
        tick = c.on_observation(msg.data, time.monotonic())
        if tick is not None:
            if tick.safe:
                self.get_logger().warning(f"{tick.reason}; safe action published "
                                          f"({c.counters.rejected} rejected so far)",
                                          throttle_duration_sec=1.0)
            self._publish(tick)

    def _on_timer(self) -> None:
        if self.controller is not None:
            tick = self.controller.on_timer(time.monotonic())
            if tick is not None:
                self._publish(tick)

    def _on_reset(self, request, response):
        if self.controller is None:
            response.success = False
            response.message = "not configured: no model loaded"
        else:
            self.controller.request_reset()
            response.success = True
            response.message = "memory reset: the next tick starts a new episode"
        return response

    # -- output --------------------------------------------------------------------------
    def _publish(self, tick: Tick) -> None:
        self._action_pub.publish(array_msg(tick.action, "safe" if tick.safe else "action"))
        s = self.settings
        if self._cmd_pub is not None:
            m, twist = s.cmd_vel, Twist()
            twist.linear.x = float(tick.action[m.linear_index]) * m.linear_scale
            twist.angular.z = float(tick.action[m.angular_index]) * m.angular_scale
            if m.stamped:
                msg = TwistStamped(twist=twist)
                msg.header.stamp = self.get_clock().now().to_msg()
                msg.header.frame_id = m.frame_id
                self._cmd_pub.publish(msg)
            else:
                self._cmd_pub.publish(twist)
        if self._debug_pubs and not tick.safe:
            for name, arr in self.controller.debug_fields().items():
                if name == "value":
                    self._debug_pubs[name].publish(Float32(data=float(arr[0])))
                else:
                    self._debug_pubs[name].publish(array_msg(arr.reshape(-1), name, arr.shape))

    def _publish_diagnostics(self) -> None:
        c = self.controller
        if c is None:
            return
        values = c.status(time.monotonic())
        st = DiagnosticStatus(name=f"{self.get_name()}: policy", hardware_id=values["model_sha256"])
        if not c.active:
            st.level, st.message = DiagnosticStatus.WARN, "inactive: not acting"
        elif c.watchdog_tripped:
            st.level, st.message = DiagnosticStatus.ERROR, "watchdog: no observation, safe action"
        elif c.counters.snapshot_errors:
            st.level, st.message = DiagnosticStatus.WARN, "snapshot write failed"
        else:
            st.level, st.message = DiagnosticStatus.OK, "acting"
        st.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        arr = DiagnosticArray(status=[st])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def _log(self, level: str, msg: str) -> None:
        # rclpy's logger wants one severity per call site: one call per level.
        log = self.get_logger()
        if level == "error":
            log.error(msg)
        elif level == "warn":
            log.warning(msg)
        else:
            log.info(msg)


def init_ros(args=None) -> list:
    """``rclpy.init`` with our own SIGINT/SIGTERM handling: a signal only appends to the
    returned list, so the main loop ends and the program can still publish and save on
    its way out (rclpy's own handler would shut the context down first)."""
    rclpy.init(args=args if args is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO)
    stopping: list = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    return stopping


def main(args=None) -> int:
    stopping = init_ros(args)
    node = PolicyNode()
    code = 0
    try:
        if node.get_parameter("autostart").value is True:
            node.trigger_configure()
            if node.controller is None:
                code = 1
                stopping.append(True)
            else:
                node.trigger_activate()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        # The model and everything made at start-up are long-lived: move them out of the
        # collector's generations, so its pauses stay short at control rates.
        gc.collect()
        gc.freeze()
        while not stopping and not node.finished:
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
