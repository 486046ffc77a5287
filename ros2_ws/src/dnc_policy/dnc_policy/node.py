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
- with ``debug.enabled``: ``~/debug/value`` (std_msgs/Float32) and, per state entry the
  contract names in ``debug_state`` (a DNC's ``usage``, ``write_weights``,
  ``read_weights``), ``~/debug/<name>`` (Float32MultiArray) after each tick.

Lifecycle: configure reads and validates the parameters, loads the model (and restores a
memory snapshot); activate applies the real-time knobs (``realtime.*``: CPU affinity,
SCHED_FIFO, mlockall; a refusal is a warning), freezes the garbage collector's start-up
objects and starts acting; deactivate publishes the safe action and stops; cleanup frees
everything. ``autostart`` (default true) runs configure and activate at start-up.
SIGINT/SIGTERM: the safe action is published and the memory saved before exit.

The ``executor`` parameter (read at start-up) picks rclpy's SingleThreadedExecutor or
``rclpy.experimental.EventsExecutor`` (Jazzy from rclpy 7.1.4, Kilted); the default,
``auto``, is the latter where this rclpy has it and the former where it does not (Humble);
``events`` where it is missing warns once and uses the former. Each tick reuses messages
made at configure (:class:`TickOutput`); the observation subscription keeps only the
newest message by default (``qos.depth`` 1), so a backlog is dropped, not acted on late.

Only rclpy API common to Humble, Jazzy and Kilted is used unconditionally (the message
info of a subscription callback and the EventsExecutor are used where they exist). The
decisions live in :mod:`dnc_policy.controller` (plain Python, tested without ROS).
"""

from __future__ import annotations

import gc
import signal
import sys
import time
import traceback

import numpy as np
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
    CmdVelMap,
    PolicySettings,
    SettingsError,
    check_names,
    parse_executor,
    parse_policy_settings,
)

NODE_NAME = "dnc_policy"
# The protocol of the `action` topic: layout.dim[0].label says what a message is. The sim
# bridge (dnc_policy_tools) steps its env on POLICY_LABEL only and counts SAFE_LABEL ones.
POLICY_LABEL = "action"  # the policy's decision at this tick
SAFE_LABEL = "safe"  # the safe action: rejected input, watchdog, inactive, stopping
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


def make_executor(kind: str, context=None, warn=None):
    """``(executor, kind in use)`` for the ``executor`` parameter's value: ``events`` is
    ``rclpy.experimental.EventsExecutor`` where this rclpy has it; otherwise (Humble, an
    rclpy before 7.1.4) ``warn`` is called with one line and a SingleThreadedExecutor is
    used, as for ``single_threaded``. ``auto`` (the node's default, chosen from the
    bench's figures, docs/BENCHMARKS.md) is ``events`` where it exists and
    ``single_threaded`` without a warning where it does not."""
    if kind in ("events", "auto"):
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError as e:
            if warn is not None and kind == "events":
                warn(f"executor 'events': rclpy.experimental.EventsExecutor is not in this "
                     f"rclpy ({e}; it came with Jazzy's rclpy 7.1.4): using single_threaded")
        else:
            return (EventsExecutor(context=context) if context is not None
                    else EventsExecutor()), "events"
    return SingleThreadedExecutor(context=context), "single_threaded"


def spin_until(executor, done, period: float = 0.1) -> None:
    """Run callbacks until ``done()``. Always ``spin_once`` with a timeout: rclpy 9.1's
    EventsExecutor busy-waits in ``spin()`` and in ``spin_once()`` without one (a core at
    ~95% with nothing to do; docs/ROS.md, Executors)."""
    while not done():
        executor.spin_once(period)


def callback_takes_message_info(executor_kind: str) -> bool:
    """Whether a subscription callback may take ``(msg, info)`` here: rclpy has
    ``Subscription.CallbackType`` (Iron+) and the executor is rclpy's own (the
    EventsExecutor fails on such callbacks)."""
    from rclpy.subscription import Subscription

    kinds = getattr(Subscription, "CallbackType", None)
    return executor_kind == "single_threaded" and hasattr(kinds, "WithMessageInfo")


class TickOutput:
    """The messages the node publishes at each tick, made once and filled in place: the
    action (one message labelled ``action`` and one labelled ``safe``, each with a float32
    numpy view of its ``data`` array) and, with ``cmd_vel``, the Twist (TwistStamped).
    rclpy serialises a message inside ``publish``, so reusing it is safe."""

    def __init__(self, width: int, cmd_vel: CmdVelMap | None = None, stamp=None):
        """``stamp()``: a builtin_interfaces/Time for a TwistStamped's header."""
        self.policy = array_msg(np.zeros(width), POLICY_LABEL)
        self.safe = array_msg(np.zeros(width), SAFE_LABEL)
        # msg.data is an array.array('f'): a view writes into it, the setter is not called
        self._policy_view = np.frombuffer(self.policy.data, np.float32)
        self._safe_view = np.frombuffer(self.safe.data, np.float32)
        self.map, self._stamp = cmd_vel, stamp
        self.cmd = None
        if cmd_vel is not None:
            self._twist = Twist()
            self.cmd = TwistStamped(twist=self._twist) if cmd_vel.stamped else self._twist
            if cmd_vel.stamped:
                self._twist = self.cmd.twist
                self.cmd.header.frame_id = cmd_vel.frame_id

    def action(self, tick: Tick) -> Float32MultiArray:
        """The action message of ``tick``, filled."""
        if tick.safe:
            np.copyto(self._safe_view, tick.action)
            return self.safe
        np.copyto(self._policy_view, tick.action)
        return self.policy

    def cmd_vel(self, tick: Tick):
        """The Twist (or TwistStamped) of ``tick``, filled; None without cmd_vel."""
        m = self.map
        if m is None:
            return None
        lin = self._twist.linear
        ang = self._twist.angular
        lin.x = tick.action.item(m.linear_index) * m.linear_scale
        ang.z = tick.action.item(m.angular_index) * m.angular_scale
        if m.stamped:
            self.cmd.header.stamp = self._stamp()
        return self.cmd


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
        # The executor in use (main sets it before configure): with rclpy's own, the
        # observation callback takes the message info (DDS reception time, sequence
        # numbers); the EventsExecutor cannot pass it.
        self.executor_kind = "single_threaded"
        self._entities: list = []
        self._out: TickOutput | None = None
        self._diag: DiagnosticArray | None = None
        self._last_seq: dict = {}  # publisher gid -> the last observation sequence number
        self._gc_at_activate = 0
        self._reset_srv = self.create_service(Trigger, "~/reset_memory", self._on_reset)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Parameters are read at configure: refuse changes while a model is loaded (they
        would be silently ignored otherwise); ``executor`` is read at start-up only."""
        if any(p.name == "executor" for p in params):
            return SetParametersResult(
                successful=False,
                reason="executor: read at start-up (the executor runs the lifecycle "
                       "services); restart the node with the new value")
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
        self._out = TickOutput(c.safe_action.size, s.cmd_vel,
                               stamp=lambda: self.get_clock().now().to_msg())
        self._diag = None
        self._last_seq = {}
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
        with_info = callback_takes_message_info(self.executor_kind)
        c.age_source = "dds_reception" if with_info else "callback"
        c.counts_queue_drops = with_info
        self._obs_sub = keep(self.create_subscription(
            Float32MultiArray, "observation",
            self._on_observation_info if with_info else self._on_observation,
            qos_profile(s.obs_reliable, s.qos_depth)))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._apply_realtime(self.settings)
        # The model and everything made so far are long-lived: collect once, then move
        # them out of the collector's generations (gc.freeze), so a collection never
        # walks them. The collector stays on: the ticks allocate no containers, so its
        # young-generation count does not grow from them; a cycle made elsewhere (an
        # exception's traceback, a service future) is still reclaimed. `gc_collections`
        # in /diagnostics counts collections since activation.
        gc.collect()
        gc.freeze()
        self._gc_at_activate = _gc_collections()
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
        gc.unfreeze()  # what cleanup frees can be collected again; activate freezes anew
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
        """The observation's arrival is this callback's start."""
        self._observe(msg.data, time.monotonic(), None)

    def _on_observation_info(self, msg: Float32MultiArray, info) -> None:
        """With the message info (rclpy's own executor, Iron+): the arrival is DDS's
        reception time, so time spent in the subscription's queue counts in the age; gaps
        in a publisher's sequence numbers are observations that never reached us."""
        now = time.monotonic()
        c = self.controller
        if c is None:
            return
        arrival = None
        received = info.get("received_timestamp") or 0  # ns, the system clock (DDS)
        if received > 0:
            waited = (time.time_ns() - received) * 1e-9
            if 0.0 <= waited < 60.0:  # else a clock step: take this callback's start
                arrival = now - waited
        seq, gid = info.get("publication_sequence_number"), info.get("publisher_gid")
        if seq is not None and gid is not None:
            key = gid.get("data") if isinstance(gid, dict) else None
            if key is not None:
                last = self._last_seq.get(key)
                if last is not None and seq > last + 1:
                    c.dropped(seq - last - 1)
                if last is None and len(self._last_seq) >= 64:
                    self._last_seq.clear()  # publishers come and go: keep the map small
                self._last_seq[key] = seq
        self._observe(msg.data, now, arrival)

    def _observe(self, data, now: float, arrival) -> None:
        c = self.controller
        if c is None:
            return
        tick = c.on_observation(data, now, arrival)
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
        out = self._out
        self._action_pub.publish(out.action(tick))
        if self._cmd_pub is not None:
            self._cmd_pub.publish(out.cmd_vel(tick))
        if not tick.safe:
            self.controller.published(time.monotonic())
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
        values["executor"] = self.executor_kind
        values["gc_collections"] = str(_gc_collections() - self._gc_at_activate
                                       if c.active else 0)
        arr = self._diag
        if arr is None or [kv.key for kv in arr.status[0].values] != list(values):
            # made once (per configure): the same message, its values updated each period
            arr = self._diag = DiagnosticArray(status=[DiagnosticStatus(
                name=f"{self.get_name()}: policy", hardware_id=values["model_sha256"],
                values=[KeyValue(key=k) for k in values])])
        st = arr.status[0]
        for kv, v in zip(st.values, values.values()):
            kv.value = v
        if not c.active:
            st.level, st.message = DiagnosticStatus.WARN, "inactive: not acting"
        elif c.watchdog_tripped:
            st.level, st.message = DiagnosticStatus.ERROR, "watchdog: no observation, safe action"
        elif c.counters.snapshot_errors:
            st.level, st.message = DiagnosticStatus.WARN, "snapshot write failed"
        else:
            st.level, st.message = DiagnosticStatus.OK, "acting"
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


def _gc_collections() -> int:
    return sum(g["collections"] for g in gc.get_stats())


def init_ros(args=None) -> list:
    """``rclpy.init`` with our own SIGINT/SIGTERM handling: a signal only appends to the
    returned list, so the main loop ends and the program can still publish and save on
    its way out (rclpy's own handler would shut the context down first)."""
    rclpy.init(args=args if args is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO)
    stopping: list = []
    install_signal_handlers(stopping)
    return stopping


def install_signal_handlers(stopping: list) -> None:
    """SIGINT/SIGTERM append to ``stopping``. Called again after an EventsExecutor is
    made: it installs its own handlers for both (asio), which would shut the context down
    before the safe action and the last snapshot could go out."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))


def executor_for(node, stopping: list):
    """The executor the node's ``executor`` parameter asks for (SettingsError if the value
    is bad), with our signal handlers in force."""
    kind = parse_executor(node.get_parameter("executor").value)
    executor, used = make_executor(kind, warn=node.get_logger().warning)
    install_signal_handlers(stopping)
    return executor, used


def main(args=None) -> int:
    stopping = init_ros(args)
    node = PolicyNode()
    code = 0
    executor = None
    try:
        try:
            executor, node.executor_kind = executor_for(node, stopping)
        except SettingsError as e:
            node.get_logger().error(f"start-up failed: {e}")
            return 1
        executor.add_node(node)
        if node.get_parameter("autostart").value is True:
            node.trigger_configure()
            if node.controller is None:
                code = 1
                stopping.append(True)
            else:
                node.trigger_activate()
        spin_until(executor, lambda: stopping or node.finished)
    finally:
        node.stop()
        if executor is not None:
            executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
