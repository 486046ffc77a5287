"""Benchmark of the cores: ``python -m dnc_core.bench [--quick]``.

Prints, at N=32, W=16, R=4, hidden 128, obs 12 on 2 threads (the defaults):

1. forward+backward training throughput (steps/s = batch x sequence steps per second)
   at batch 16 x 32 steps for our DNC (eager and ``compile_step``), our LSTM, and the
   ``dnc`` package from PyPI at the same sizes, measured round-robin in one run so that
   the ratios are fair on a noisy machine;
2. single-step forward latency at batch 1 (what a robot's control tick pays in PyTorch);
3. how the DNC's time and memory grow with N from 16 to 512 (each N in a fresh process:
   peak RSS above the process's baseline, and the bytes autograd saves for backward).

All timings are medians of repeated runs. Nothing here is a pass/fail test; targets are
printed next to the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import warnings
from typing import Callable

import torch
from torch import nn

from .dnc import DNCCore
from .lstm import LSTMCore

SIZES = dict(memory_slots=32, word_size=16, read_heads=4, hidden_size=128)
OBS, BATCH, STEPS = 12, 16, 32


def _train_iteration(core: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    head = nn.Linear(core.feature_size, 1)

    def run():
        feats, _ = core.unroll(x, core.initial_state(x.shape[0]))
        head(feats).sum().backward()
    return run


def _dnc_package_iteration(x: torch.Tensor) -> Callable[[], None] | None:
    """The PyPI ``dnc`` package (ixaxaar/pytorch-dnc) at our sizes, or None if absent."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from dnc import DNC
    except ImportError:
        return None
    model = DNC(input_size=OBS, hidden_size=SIZES["hidden_size"], rnn_type="lstm", num_layers=1,
                num_hidden_layers=1, nr_cells=SIZES["memory_slots"], cell_size=SIZES["word_size"],
                read_heads=SIZES["read_heads"], batch_first=True, gpu_id=-1)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out, _ = model(x, (None, None, None), reset_experience=True)
        out.sum().backward()
    return run


def _round_robin(fns: dict[str, Callable[[], None]], repeats: int, warmup: int = 2
                 ) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def throughput(repeats: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(BATCH, STEPS, OBS)
    fns = {"ours: DNC (eager)": _train_iteration(DNCCore(OBS, **SIZES), x)}
    compile_start = time.perf_counter()
    compiled = DNCCore(OBS, **SIZES).compile_step()
    fns["ours: DNC (compile_step)"] = _train_iteration(compiled, x)
    fns["ours: DNC (compile_step)"]()  # triggers compilation
    compile_s = time.perf_counter() - compile_start  # small if inductor's disk cache is warm
    fns["ours: LSTM (eager)"] = _train_iteration(LSTMCore(OBS, SIZES["hidden_size"]), x)
    pkg = _dnc_package_iteration(x)
    if pkg is not None:
        fns["PyPI dnc 1.1.0 (eager)"] = pkg
    med = _round_robin(fns, repeats)
    steps = BATCH * STEPS
    print(f"\n1. Training throughput, forward+backward, batch {BATCH} x {STEPS} steps, "
          f"{torch.get_num_threads()} threads (median of {repeats}, round-robin)")
    print(f"   {'model':28s} {'ms/iter':>9s} {'steps/s':>9s} {'vs PyPI dnc':>12s}")
    base = med.get("PyPI dnc 1.1.0 (eager)")
    for k, s in med.items():
        ratio = f"{base / s:10.2f}x" if base else "          -"
        print(f"   {k:28s} {s * 1e3:9.1f} {steps / s:9.0f} {ratio:>12s}")
    if base is None:
        print("   (PyPI dnc not installed: pip install 'dnc==1.1.0' for the comparison)")
    print(f"   compile_step one-off compile time: {compile_s:.0f} s "
          "(tens of seconds on a cold inductor cache, a few once it is cached on disk)")
    print("   targets: ours >= 2x PyPI dnc and >= 10,000 steps/s")


def latency(n_steps: int) -> None:
    torch.manual_seed(0)
    print(f"\n2. Single-step forward latency, batch 1, no grad (median and p99 of {n_steps})")
    for name, core in (("DNC", DNCCore(OBS, **SIZES)), ("LSTM", LSTMCore(OBS, SIZES["hidden_size"]))):
        core.eval()
        state, x, reset = core.initial_state(1), torch.randn(1, OBS), torch.zeros(1)
        times = []
        with torch.no_grad():
            for i in range(n_steps + 50):
                t = time.perf_counter()
                _, state = core.step(x, state, reset)
                if i >= 50:
                    times.append(time.perf_counter() - t)
        times.sort()
        print(f"   {name:5s} p50 {times[len(times) // 2] * 1e6:7.0f} us   "
              f"p99 {times[int(len(times) * 0.99)] * 1e6:7.0f} us")


def _peak_rss_kb() -> int:
    """Peak resident set size of this process in KiB (VmHWM on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss() -> int:
    """Reset the peak RSS to the current RSS where Linux allows it; return the baseline."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _peak_rss_kb()


def _scaling_point(n: int, repeats: int) -> dict:
    """Runs in a fresh process: time, peak RSS growth and saved-for-backward bytes at N."""
    torch.manual_seed(0)
    core = DNCCore(OBS, **{**SIZES, "memory_slots": n})
    x = torch.randn(BATCH, STEPS, OBS)
    base_rss = _reset_peak_rss()
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        feats, _ = core.unroll(x, core.initial_state(BATCH))
    feats.sum().backward()
    peak = _peak_rss_kb()
    run = _train_iteration(core, x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return dict(n=n, ms=statistics.median(times) * 1e3, peak_mb=(peak - base_rss) / 1024,
                saved_mb=saved[0] / 2**20)


def scaling(ns: list[int], repeats: int) -> None:
    print(f"\n3. DNC cost as N grows (W={SIZES['word_size']}, R={SIZES['read_heads']}, hidden "
          f"{SIZES['hidden_size']}, batch {BATCH} x {STEPS} steps, fwd+bwd, fresh process each)")
    print(f"   {'N':>5s} {'ms/iter':>9s} {'steps/s':>9s} {'saved for bwd MB':>17s} {'peak RSS +MB':>13s}")
    for n in ns:
        out = subprocess.run([sys.executable, "-m", "dnc_core.bench", "--point", str(n),
                              "--repeats", str(repeats if n <= 128 else max(1, repeats // 3)),
                              "--threads", str(torch.get_num_threads())],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"   {r['n']:5d} {r['ms']:9.1f} {BATCH * STEPS / r['ms'] * 1e3:9.0f} "
              f"{r['saved_mb']:17.1f} {r['peak_mb']:13.0f}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--quick", action="store_true", help="fewer repeats, N up to 128")
    p.add_argument("--point", type=int, help=argparse.SUPPRESS)  # one scaling point (child)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.point:
        print(json.dumps(_scaling_point(a.point, a.repeats)))
        return
    repeats = 5 if a.quick else a.repeats
    print(f"dnc_core.bench: torch {torch.__version__}, {a.threads} threads, N={SIZES['memory_slots']} "
          f"W={SIZES['word_size']} R={SIZES['read_heads']} hidden={SIZES['hidden_size']} obs={OBS}")
    throughput(repeats)
    latency(200 if a.quick else 2000)
    scaling([16, 32, 64, 128] if a.quick else [16, 32, 64, 128, 256, 512], repeats)


if __name__ == "__main__":
    main()
