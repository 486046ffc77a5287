"""The policy node's real-time knobs without ROS (``dnc_policy.realtime``, the
``realtime.*`` parameters of ``dnc_policy.settings``): CPU affinity, SCHED_FIFO and
mlockall applied for real, and each refusal by the OS a warning, never an exception.

Whether this process may take SCHED_FIFO or lock its memory depends on who runs the tests
(root in a container may; a user may not): each test checks the real outcome either way.
The refusals are also forced for real in a child process that gives up its privileges
(lower rlimits, and a switch to user nobody when it starts as root). The node itself, with
an impossible CPU id, is in tests/test_ros_node.py.
"""

from __future__ import annotations

import array
import json
import os
import resource
import subprocess
import sys
import textwrap

import pytest
from dnc_policy.realtime import AFFINITY, MLOCK, PRIORITY, apply_realtime
from dnc_policy.settings import SettingsError, parse_policy_settings

CAP_SYS_NICE, CAP_IPC_LOCK = 23, 14  # linux/capability.h


def capability(bit: int) -> bool:
    with open("/proc/self/status") as f:
        caps = next(line for line in f if line.startswith("CapEff:"))
    return bool(int(caps.split()[1], 16) >> bit & 1)


def run_child(code: str) -> dict:
    """Run ``code`` in a fresh Python (this environment) and return the JSON it prints
    last. The child imports nothing but the module under test."""
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=60, check=False)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture
def affinity():
    """This thread's CPU affinity before the test, put back after it."""
    before = os.sched_getaffinity(0)
    yield before
    os.sched_setaffinity(0, before)


# -- CPU affinity ------------------------------------------------------------------------
def test_affinity_to_a_cpu_this_process_may_use_is_applied_and_read_back(affinity):
    cpu = max(affinity)
    r = apply_realtime(cpu_affinity=[cpu])
    assert r.warnings == []
    assert r.applied == {AFFINITY: [cpu]} and os.sched_getaffinity(0) == {cpu}
    assert r.describe() == f"cpu_affinity [{cpu}]"


def test_an_impossible_cpu_id_is_a_warning_and_leaves_the_affinity_unchanged(affinity):
    r = apply_realtime(cpu_affinity=[4096])
    assert r.applied == {} and os.sched_getaffinity(0) == affinity
    [warning] = r.warnings
    assert warning.startswith(f"{AFFINITY} [4096]: sched_setaffinity failed (EINVAL")
    assert f"affinity left at {sorted(affinity)}" in warning
    assert "--cpuset-cpus" in warning  # how to give the process the CPUs


def test_an_unavailable_cpu_among_available_ones_is_named_in_a_warning(affinity):
    cpu = min(affinity)
    r = apply_realtime(cpu_affinity=[cpu, 4096])
    assert r.applied == {AFFINITY: [cpu]} and os.sched_getaffinity(0) == {cpu}
    [warning] = r.warnings
    assert "CPUs [4096] are not available to this process" in warning
    assert f"running on [{cpu}] only" in warning


def test_knobs_that_are_off_change_nothing(affinity):
    sched = os.sched_getscheduler(0)
    r = apply_realtime()
    assert (r.applied, r.warnings, r.describe()) == ({}, [], "")
    assert os.sched_getaffinity(0) == affinity and os.sched_getscheduler(0) == sched


# -- SCHED_FIFO ----------------------------------------------------------------------------
def test_sched_fifo_is_applied_and_reverted_or_refused_with_a_warning():
    """Root (or CAP_SYS_NICE, or an rtprio limit) gets SCHED_FIFO; anyone else a warning."""
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    privileged = capability(CAP_SYS_NICE) or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] >= 1
    try:
        r = apply_realtime(fifo_priority=1)
        if PRIORITY in r.applied:
            assert privileged, "SCHED_FIFO without CAP_SYS_NICE or an rtprio limit"
            assert r.applied == {PRIORITY: 1} and r.warnings == []
            assert os.sched_getscheduler(0) == os.SCHED_FIFO
            assert os.sched_getparam(0).sched_priority == 1
        else:
            [warning] = r.warnings
            assert warning.startswith(f"{PRIORITY} 1: SCHED_FIFO refused (EPERM")
            assert "CAP_SYS_NICE" in warning and "rtprio" in warning
            assert os.sched_getscheduler(0) == os.SCHED_OTHER
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # reverted


def test_a_priority_outside_sched_fifo_range_is_a_warning():
    r = apply_realtime(fifo_priority=120)
    assert r.applied == {} and os.sched_getscheduler(0) == os.SCHED_OTHER
    assert r.warnings == [(f"{PRIORITY} 120: outside SCHED_FIFO's priorities on this system "
                           "(1-99); running at the normal priority")]


# -- mlockall ------------------------------------------------------------------------------
def test_mlockall_locks_and_munlockall_unlocks_or_it_is_refused_with_a_warning():
    """In a fresh process (locking this one would fault in every library pytest loaded):
    the real outcome, then munlockall."""
    out = run_child("""
        import json, sys
        from dnc_policy.realtime import apply_realtime, libc

        def locked_kib():
            with open("/proc/self/status") as f:
                return int(next(l for l in f if l.startswith("VmLck:")).split()[1])

        r = apply_realtime(mlock=True)
        during = locked_kib()
        rc = libc().munlockall()
        print(json.dumps({"applied": r.applied, "warnings": r.warnings, "during": during,
                          "rc": rc, "after": locked_kib(), "rclpy": "rclpy" in sys.modules}))
    """)
    assert not out["rclpy"]  # plain Python: no ROS needed
    if out["applied"]:
        assert out["applied"] == {MLOCK: True}
        assert out["during"] > 0 and out["rc"] == 0 and out["after"] == 0
        soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
        if soft != resource.RLIM_INFINITY and not capability(CAP_IPC_LOCK):
            [warning] = out["warnings"]  # later allocations beyond the limit would fail
            assert "memory locked, but the memlock limit" in warning
        else:
            assert out["warnings"] == []
    else:
        [warning] = out["warnings"]
        assert warning.startswith(f"{MLOCK}: mlockall(MCL_CURRENT | MCL_FUTURE) failed")
        assert "ulimit -l" in warning and "CAP_IPC_LOCK" in warning
        assert out["during"] == 0


# -- without privileges: every knob a warning, nothing raised --------------------------------
def test_a_process_without_the_privileges_gets_one_warning_per_knob_and_runs_on():
    """The child lowers its rtprio and memlock limits and, if it is root, becomes user
    nobody (which drops every capability); then it asks for all three knobs."""
    out = run_child("""
        import json, os, resource
        from dnc_policy.realtime import apply_realtime

        resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 * 1024, 64 * 1024))
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        with open("/proc/self/status") as f:
            caps = int(next(l for l in f if l.startswith("CapEff:")).split()[1], 16)
        r = apply_realtime(cpu_affinity=[4096], fifo_priority=50, mlock=True)
        print(json.dumps({"applied": r.applied, "warnings": r.warnings, "caps": caps,
                          "sched": os.sched_getscheduler(0), "uid": os.geteuid()}))
    """)
    assert out["caps"] >> CAP_SYS_NICE & 1 == 0 and out["caps"] >> CAP_IPC_LOCK & 1 == 0
    assert out["applied"] == {} and out["sched"] == os.SCHED_OTHER
    affinity, fifo, mlock = out["warnings"]
    assert affinity.startswith(f"{AFFINITY} [4096]: sched_setaffinity failed (EINVAL")
    assert fifo.startswith(f"{PRIORITY} 50: SCHED_FIFO refused (EPERM")
    assert "its rtprio limit, `ulimit -r`, is 0" in fifo
    for hint in ("CAP_SYS_NICE", "limits.conf", "LimitRTPRIO", "--ulimit rtprio"):
        assert hint in fifo, hint
    assert mlock.startswith(f"{MLOCK}: mlockall(MCL_CURRENT | MCL_FUTURE) failed (")
    assert "memlock limit, `ulimit -l`, is 0.0625 MiB" in mlock
    for hint in ("CAP_IPC_LOCK", "ulimit -l unlimited", "LimitMEMLOCK", "--ulimit memlock"):
        assert hint in mlock, hint


# -- the parameters --------------------------------------------------------------------------
def test_the_knobs_are_off_by_default_and_parsed_from_the_parameters():
    s = parse_policy_settings({"model_path": "m.onnx"})
    assert (s.cpu_affinity, s.fifo_priority, s.mlockall) == ((), 0, False)
    s = parse_policy_settings({"model_path": "m.onnx", "realtime.cpu_affinity": [3, 1, 3],
                               "realtime.sched_fifo_priority": 80, "realtime.mlockall": True})
    assert (s.cpu_affinity, s.fifo_priority, s.mlockall) == ((1, 3), 80, True)
    # An integer array set through the parameter service arrives as an array.array.
    s = parse_policy_settings({"model_path": "m", "realtime.cpu_affinity": array.array("q", [2])})
    assert s.cpu_affinity == (2,)


PRIO = ("'realtime.sched_fifo_priority' = {}: expected 0 (off) or a SCHED_FIFO priority from "
        "1 to 99")
CPUS = ("'realtime.cpu_affinity' = {}: expected a list of CPU ids (integers from 0 to 65535); "
        "empty: off")


@pytest.mark.parametrize("values,message", [
    ({"realtime.sched_fifo_priority": 120}, PRIO.format(120)),
    ({"realtime.sched_fifo_priority": -1}, PRIO.format(-1)),
    ({"realtime.sched_fifo_priority": "high"}, PRIO.format("'high'")),
    ({"realtime.sched_fifo_priority": 50.0}, PRIO.format(50.0)),
    ({"realtime.sched_fifo_priority": True}, PRIO.format(True)),
    ({"realtime.cpu_affinity": [-1]}, CPUS.format([-1])),
    ({"realtime.cpu_affinity": [0, 70000]}, CPUS.format([0, 70000])),
    ({"realtime.cpu_affinity": "0,1"}, CPUS.format("'0,1'")),
    ({"realtime.cpu_affinity": ["2"]}, CPUS.format(["2"])),
    ({"realtime.cpu_affinity": [True]}, CPUS.format([True])),
    ({"realtime.cpu_affinity": array.array("q", [-3])}, CPUS.format([-3])),
    ({"realtime.mlockall": "yes"}, "'realtime.mlockall' = 'yes': expected true or false"),
    ({"realtime.mlockall": 1}, "'realtime.mlockall' = 1: expected true or false"),
    ({"realtime.mlock": True},
     "unknown parameter 'realtime.mlock' (did you mean 'realtime.mlockall'?)"),
])
def test_a_bad_knob_value_is_refused_at_configure_naming_the_parameter(values, message):
    with pytest.raises(SettingsError) as e:
        parse_policy_settings({"model_path": "m.onnx", **values})
    assert message in str(e.value)
