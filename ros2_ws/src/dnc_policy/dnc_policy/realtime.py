"""Real-time knobs of the policy node in plain Python (no rclpy): CPU affinity, a
``SCHED_FIFO`` priority and ``mlockall``, each off unless asked for.

    result = apply_realtime(cpu_affinity=[3], fifo_priority=80, mlock=True)
    result.applied    # {"realtime.cpu_affinity": [3], "realtime.sched_fifo_priority": 80,
                      #  "realtime.mlockall": True}: what is in force now
    result.warnings   # one line per knob that could not be applied: what failed and how
                      # to grant it

Affinity and scheduling policy are set for the calling thread (Linux applies both per
thread; threads it starts later inherit them): the node calls this on its executor thread,
the one that runs every tick, so the DDS threads and the snapshot writer keep the
process's settings. ``mlockall`` is for the whole process (every page mapped now and later
stays in RAM). Pin the whole process with the OS instead (``taskset``, systemd
``CPUAffinity=``, ``docker run --cpuset-cpus``): docs/JETSON.md.

A knob that fails (no permission, a CPU this process may not use, a limit too low) is a
warning naming the parameter, never an exception: the node keeps running without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

AFFINITY = "realtime.cpu_affinity"
PRIORITY = "realtime.sched_fifo_priority"
MLOCK = "realtime.mlockall"
CAP_IPC_LOCK = 14  # linux/capability.h


@dataclass
class RealtimeResult:
    """What :func:`apply_realtime` put in force (parameter name -> value) and a warning
    line for each knob it could not apply."""

    applied: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """``"cpu_affinity [3], sched_fifo_priority 80, mlockall"`` (empty: nothing set)."""
        parts = []
        for name, value in self.applied.items():
            short = name.split(".", 1)[1]
            parts.append(short if value is True else f"{short} {value}")
        return ", ".join(parts)


def apply_realtime(cpu_affinity: Sequence[int] = (), fifo_priority: int = 0,
                   mlock: bool = False) -> RealtimeResult:
    """Apply the knobs that are on: ``cpu_affinity`` (CPU ids; empty: off),
    ``fifo_priority`` (1-99: ``SCHED_FIFO`` at that priority; 0: off), ``mlock``
    (``mlockall(MCL_CURRENT | MCL_FUTURE)``). Knobs that are off are left as the process
    has them. Never raises for an OS refusal: see :attr:`RealtimeResult.warnings`."""
    result = RealtimeResult()
    if cpu_affinity:
        _affinity([int(c) for c in cpu_affinity], result)
    if fifo_priority:
        _fifo(int(fifo_priority), result)
    if mlock:
        _mlockall(result)
    return result


def _cpus(cpus) -> str:
    return "[" + ", ".join(str(c) for c in sorted(cpus)) + "]"


def _errname(e: OSError) -> str:
    code = e.errno or 0
    return f"{errno.errorcode.get(code, code)}: {os.strerror(code)}" if code else str(e)


def _online_cpus() -> str:
    try:
        with open("/sys/devices/system/cpu/online") as f:
            return f.read().strip()
    except OSError:
        return f"{os.cpu_count()} CPUs"


def _affinity(cpus: list[int], result: RealtimeResult) -> None:
    if not hasattr(os, "sched_setaffinity"):
        result.warnings.append(f"{AFFINITY} {_cpus(cpus)}: CPU affinity is not supported on "
                               f"{sys.platform}; not applied")
        return
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cpus)
    except (OSError, ValueError, OverflowError) as e:
        why = (f"sched_setaffinity failed ({_errname(e)})" if isinstance(e, OSError)
               else f"sched_setaffinity refused it ({e})")
        hint = ("none of these CPUs is online or in this process's cpuset"
                if getattr(e, "errno", None) == errno.EINVAL else "")
        result.warnings.append(
            f"{AFFINITY} {_cpus(cpus)}: {why}" + (f": {hint}" if hint else "")
            + f" (online CPUs: {_online_cpus()}; this process may use {_cpus(before)}); "
            f"affinity left at {_cpus(before)}. Use CPU ids from `nproc` / "
            "/sys/devices/system/cpu/online that the container or service may use "
            "(docker run --cpuset-cpus, systemd AllowedCPUs=/CPUAffinity=)")
        return
    after = os.sched_getaffinity(0)
    missing = sorted(set(cpus) - after)
    if missing:
        result.warnings.append(
            f"{AFFINITY} {_cpus(cpus)}: CPUs {_cpus(missing)} are not available to this "
            f"process (offline, or outside its cpuset; online: {_online_cpus()}); running "
            f"on {_cpus(after)} only")
    result.applied[AFFINITY] = sorted(after)


def _fifo(priority: int, result: RealtimeResult) -> None:
    if not hasattr(os, "sched_setscheduler"):
        result.warnings.append(f"{PRIORITY} {priority}: SCHED_FIFO is not supported on "
                               f"{sys.platform}; running at the normal priority")
        return
    low, high = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
    if not low <= priority <= high:
        result.warnings.append(f"{PRIORITY} {priority}: outside SCHED_FIFO's priorities on "
                               f"this system ({low}-{high}); running at the normal priority")
        return
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError as e:
        soft = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
        limit = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
        result.warnings.append(
            f"{PRIORITY} {priority}: SCHED_FIFO refused ({_errname(e)}): this process may "
            f"not take real-time priority {priority} (its rtprio limit, `ulimit -r`, is "
            f"{limit}). Grant it an rtprio limit >= {priority} (`@realtime - rtprio "
            f"{priority}` in /etc/security/limits.conf with the user in group realtime; "
            f"LimitRTPRIO={priority} in a systemd unit; docker run --ulimit "
            f"rtprio={priority}) or CAP_SYS_NICE (a container running as root: docker run "
            "--cap-add SYS_NICE); with cgroup v1 the cgroup also needs real-time runtime "
            "(cpu.rt_runtime_us). Running at the normal priority")
        return
    except OSError as e:
        result.warnings.append(f"{PRIORITY} {priority}: SCHED_FIFO failed ({_errname(e)}); "
                               "running at the normal priority")
        return
    result.applied[PRIORITY] = os.sched_getparam(0).sched_priority


def mlock_flags() -> tuple[int, int]:
    """``(MCL_CURRENT, MCL_FUTURE)`` of this Linux architecture (sys/mman.h)."""
    if platform.machine().lower().startswith(("ppc", "powerpc", "sparc", "alpha")):
        return 0x2000, 0x4000
    return 1, 2


def libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _has_capability(bit: int) -> bool | None:
    """Whether this process has the capability ``bit`` in effect (None: unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError):
        pass
    return None


def _mib(n: int) -> str:
    return "unlimited" if n == resource.RLIM_INFINITY else f"{n / 2**20:g} MiB"


def _mlockall(result: RealtimeResult) -> None:
    if not sys.platform.startswith("linux"):
        result.warnings.append(f"{MLOCK}: mlockall is only used on Linux ({sys.platform}); "
                               "memory not locked")
        return
    current, future = mlock_flags()
    lib = libc()
    if lib.mlockall(current | future) != 0:
        code = ctypes.get_errno()
        e = OSError(code, os.strerror(code))
        soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
        why = (f"the process maps more than it may lock (its memlock limit, `ulimit -l`, is "
               f"{_mib(soft)})" if code in (errno.ENOMEM, errno.EAGAIN)
               else "not permitted" if code == errno.EPERM else "")
        result.warnings.append(
            f"{MLOCK}: mlockall(MCL_CURRENT | MCL_FUTURE) failed ({_errname(e)})"
            + (f": {why}" if why else "")
            + ". Grant it with an unlimited memlock limit (`ulimit -l unlimited`; `@realtime "
            "- memlock unlimited` in /etc/security/limits.conf; LimitMEMLOCK=infinity in a "
            "systemd unit; docker run --ulimit memlock=-1) or CAP_IPC_LOCK (a container "
            "running as root: docker run --cap-add IPC_LOCK). Memory not locked: a page "
            "fault can stall a tick")
        return
    result.applied[MLOCK] = True
    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    if soft != resource.RLIM_INFINITY and _has_capability(CAP_IPC_LOCK) is False:
        result.warnings.append(
            f"{MLOCK}: memory locked, but the memlock limit (`ulimit -l`) is {_mib(soft)}: "
            "with MCL_FUTURE an allocation that would lock more than that fails "
            "(MemoryError). Raise it to unlimited (LimitMEMLOCK=infinity, docker run "
            "--ulimit memlock=-1) or grant CAP_IPC_LOCK")
