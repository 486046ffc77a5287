"""Control-tick latency: ``python -m export.bench policy.onnx [--checkpoint CKPT]``.

At batch 1 and one thread, times the robot runtime (``dnc_policy.runtime``, onnxruntime
CPU provider, IOBinding) and the PyTorch policy's eager step side by side, in
interleaved chunks so both see the same machine load; prints p50/p99, their ratio, the
graph's node count and the file size. The checkpoint defaults to the one next to the
model (``checkpoints/latest.pt`` of its run folder) when its sha256 matches the
contract's. With a CUDA-enabled onnxruntime, ``--gpu`` also times the CUDA provider with
and without CUDA graphs against the CPU provider at batch 1 and 64.
Targets (issue 5, CPU): runtime p50 <= 40 us and >= 5x faster than eager.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dnc_policy.runtime import PolicyRuntime


def _percentiles(times: list[float]) -> tuple[float, float]:
    t = np.sort(np.asarray(times)) * 1e6
    return float(np.percentile(t, 50)), float(np.percentile(t, 99))


def _find_checkpoint(model: Path, contract: dict, given: str | None):
    from export.onnx import sha256_of
    from training.checkpoint import load_policy

    path = Path(given) if given else model.parent / "checkpoints" / "latest.pt"
    if not path.is_file():
        return None, f"no checkpoint at {path} (pass --checkpoint)"
    want = contract.get("checkpoint", {}).get("sha256")
    if not given and sha256_of(path) != want:
        return None, f"{path} is not the checkpoint this model was exported from"
    return load_policy(path)[0], str(path)


def time_runtime_vs_eager(rt: PolicyRuntime, policy, steps: int, chunk: int = 250
                          ) -> dict[str, list[float]]:
    from dnc_core.policy import deterministic_action

    rng = np.random.default_rng(0)
    obs = rng.standard_normal((64, rt.obs_dim)).astype(np.float32)
    times: dict[str, list[float]] = {"runtime": [], "eager": []}
    state = policy.initial_state(1) if policy is not None else None
    no_reset = torch.zeros(1)
    obs_t = [torch.from_numpy(o[None]) for o in obs]
    for _ in range(100):  # warm-up
        rt.step(obs[0])
    done = 0
    while done < steps:
        for i in range(chunk):
            t = time.perf_counter()
            rt.step(obs[i % 64])
            times["runtime"].append(time.perf_counter() - t)
        if policy is not None:
            with torch.no_grad():
                for i in range(chunk):
                    t = time.perf_counter()
                    out, state = policy(obs_t[i % 64], state, no_reset)
                    policy.env_action(deterministic_action(policy.action, out.dist))
                    times["eager"].append(time.perf_counter() - t)
        done += chunk
    return times


def gpu_table(model: str, steps: int) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print("\nCUDA provider: not in this onnxruntime build (pip install onnxruntime-gpu)")
        return
    print("\nGPU: median step latency (us), CPU provider vs CUDA provider with and "
          "without CUDA graphs")
    configs = {"CPU": ["CPUExecutionProvider"], "CUDA": ["CUDAExecutionProvider"],
               "CUDA + CUDA graphs": [("CUDAExecutionProvider", {"enable_cuda_graph": "1"})]}
    for batch in (1, 64):
        row = []
        for name, providers in configs.items():
            try:
                rt = PolicyRuntime(model, providers=providers, batch=batch)
            except Exception as e:  # e.g. a node CUDA graphs cannot capture
                row.append(f"{name}: n/a ({type(e).__name__})")
                continue
            obs = np.zeros((batch, rt.obs_dim), np.float32)
            for _ in range(50):
                rt.step(obs)
            ts = []
            for _ in range(steps):
                t = time.perf_counter()
                rt.step(obs)
                ts.append(time.perf_counter() - t)
            p50, p99 = _percentiles(ts)
            row.append(f"{name}: p50 {p50:.0f} p99 {p99:.0f}")
        print(f"  batch {batch:3d}: " + " | ".join(row))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--checkpoint", help="the PyTorch side (default: next to the model)")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--gpu", action="store_true", help="also time the CUDA provider")
    a = p.parse_args(argv)
    import onnx

    torch.set_num_threads(1)
    model = Path(a.model)
    rt = PolicyRuntime(model, providers=["CPUExecutionProvider"], batch=1, threads=1)
    policy, where = _find_checkpoint(model, rt.contract, a.checkpoint)
    times = time_runtime_vs_eager(rt, policy, a.steps)
    nodes = len(onnx.load(str(model)).graph.node)
    core = rt.contract["core"]
    print(f"export.bench: {model} ({core['kind']} {core['config']}), batch 1, 1 thread, "
          f"{a.steps} steps each, interleaved")
    print(f"  graph: {nodes} nodes, {model.stat().st_size / 1024:.0f} KiB")
    r50, r99 = _percentiles(times["runtime"])
    print(f"  runtime (onnxruntime CPU, IOBinding)  p50 {r50:7.1f} us   p99 {r99:7.1f} us")
    if policy is None:
        print(f"  PyTorch eager: skipped: {where}")
    else:
        e50, e99 = _percentiles(times["eager"])
        print(f"  PyTorch eager step ({Path(where).name})       p50 {e50:7.1f} us   p99 {e99:7.1f} us")
        print(f"  eager / runtime (p50): {e50 / r50:.1f}x")
    print("  targets: runtime p50 <= 40 us, >= 5x faster than eager")
    if a.gpu:
        gpu_table(str(model), a.steps)


if __name__ == "__main__":
    main()
