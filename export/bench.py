"""Control-tick latency: ``python -m export.bench policy.onnx [--checkpoint CKPT]``.

At batch 1 and one thread, times the robot runtime (``dnc_policy.runtime``, onnxruntime
CPU provider, IOBinding) and the PyTorch policy's eager step side by side, in
interleaved chunks so both see the same machine load; prints p50/p99, their ratio, the
graph's node count and the file size. The checkpoint defaults to the one next to the
model (``checkpoints/latest.pt`` of its run folder) when its sha256 matches the
contract's. With a CUDA-enabled onnxruntime, ``--gpu`` also times the CUDA provider with
and without CUDA graphs against the CPU provider at batch 1 and 64.
Targets (issue 5, CPU): runtime p50 <= 40 us and >= 5x faster than eager.

``--options`` compares onnxruntime session settings (:data:`VARIANTS`: graph optimisation
level, intra-op threads with and without spinning, parallel execution), each through
``PolicyRuntime.step`` and through a plain ``session.run`` with numpy feeds, interleaved;
``--profile TICKS`` prints onnxruntime's own profile (``enable_profiling``): node time per
tick by op type. ``--against B.onnx [C.onnx ...]`` times other models beside the first
the same way (e.g. one checkpoint exported by two versions of the exporter), with their
node counts.
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


#: The session settings ``--options`` compares, each against the runtime's defaults
#: (``dnc_policy.runtime.SESSION_DEFAULTS``, one intra-op thread).
VARIANTS: dict[str, tuple[int, dict]] = {
    "default (all, sequential, 1 thread)": (1, {}),
    "graph optimisation: disable": (1, {"graph_optimization": "disable"}),
    "graph optimisation: basic": (1, {"graph_optimization": "basic"}),
    "graph optimisation: extended": (1, {"graph_optimization": "extended"}),
    "2 intra-op threads, spinning": (2, {"allow_spinning": True}),
    "2 intra-op threads, no spinning": (2, {"allow_spinning": False}),
    "parallel execution, 2 inter-op threads": (1, {"execution_mode": "parallel",
                                                   "inter_op_threads": 2}),
}


def zero_feed(contract: dict) -> dict:
    """A batch-1 feed of the contract's inputs: observation, reset and every state
    tensor, all zeros (the initial state)."""
    from dnc_policy.contract import OBS, RESET, STATE_IN
    return {OBS: np.zeros((1, contract["obs_dim"]), np.float32),
            RESET: np.zeros(1, np.float32),
            **{STATE_IN + s["name"]: np.zeros((1, *s["shape"]), np.float32)
               for s in contract["state"]}}


def plain_run(model: Path, threads: int, session: dict):
    """A plain ``InferenceSession.run`` of one tick with numpy feeds and fetches (what a
    user without the runtime writes), carrying the state: a callable ``(obs) -> None``."""
    import onnxruntime as ort

    from dnc_policy.contract import OBS, STATE_IN, STATE_OUT, read_contract
    from dnc_policy.runtime import session_options

    sess = ort.InferenceSession(str(model), session_options(threads, session),
                                providers=["CPUExecutionProvider"])
    contract = read_contract(sess)
    names = [s["name"] for s in contract["state"]]
    feed = zero_feed(contract)
    outputs = contract["outputs"]
    where = [outputs.index(STATE_OUT + n) for n in names]

    def run(obs):
        feed[OBS] = obs
        res = sess.run(outputs, feed)
        for n, i in zip(names, where):
            feed[STATE_IN + n] = res[i]
    return run


def interleaved(sides: dict, obs_dims: dict, steps: int, chunk: int = 250) -> dict:
    """Time each tick function of ``sides`` (``key -> fn(obs [1, D])``, ``D =
    obs_dims[key]``) ``steps`` times, chunk by chunk in turn, so that each sees the same
    load, after 100 warm-up ticks each; the observations are the same seeded rows for
    every side of the same width. ``{key: [seconds per tick]}``."""
    rng = np.random.default_rng(0)
    pool = {d: rng.standard_normal((64, d)).astype(np.float32) for d in set(obs_dims.values())}
    times = {key: [] for key in sides}
    for key, fn in sides.items():
        for i in range(100):
            fn(pool[obs_dims[key]][None, i % 64])
    done = 0
    while done < steps:
        for key, fn in sides.items():
            obs = pool[obs_dims[key]]
            for i in range(chunk):
                x = obs[None, i % 64]
                t = time.perf_counter()
                fn(x)
                times[key].append(time.perf_counter() - t)
        done += chunk
    return times


def _runtime_and_plain(rows: list, steps: int, chunk: int) -> list[dict]:
    """``rows`` of ``(label, model, threads, session)`` through ``PolicyRuntime.step`` and
    a plain ``session.run``, all interleaved: ``[{label, runtime_p50, runtime_p99,
    plain_p50, plain_p99}]`` in microseconds."""
    sides, dims = {}, {}
    for label, model, threads, session in rows:
        rt = PolicyRuntime(model, providers=["CPUExecutionProvider"], threads=threads,
                           session=session)
        sides[label, "runtime"] = rt.step
        sides[label, "plain"] = plain_run(model, threads, session)
        dims[label, "runtime"] = dims[label, "plain"] = rt.obs_dim
    times = interleaved(sides, dims, steps, chunk)
    out = []
    for label, *_ in rows:
        r50, r99 = _percentiles(times[label, "runtime"])
        p50, p99 = _percentiles(times[label, "plain"])
        out.append({"label": label, "runtime_p50": r50, "runtime_p99": r99,
                    "plain_p50": p50, "plain_p99": p99})
    return out


def options_table(model: Path, steps: int, chunk: int = 250) -> list[dict]:
    """Every :data:`VARIANTS` entry through ``PolicyRuntime.step`` and through a plain
    ``session.run``, all interleaved chunk by chunk so that each sees the same load;
    ``[{variant, runtime_p50, runtime_p99, plain_p50, plain_p99}]`` in microseconds."""
    rows = [(name, model, threads, session) for name, (threads, session) in VARIANTS.items()]
    out = _runtime_and_plain(rows, steps, chunk)
    for r in out:
        r["variant"] = r.pop("label")
    return out


def models_table(models: list[Path], steps: int, chunk: int = 250) -> list[dict]:
    """Several exported models (e.g. one checkpoint exported by two versions of the
    exporter) with the runtime's default settings, each through ``PolicyRuntime.step``
    and a plain ``session.run``, all interleaved: ``[{model, nodes, runtime_p50,
    runtime_p99, plain_p50, plain_p99}]`` in microseconds, in the order given."""
    import onnx

    out = _runtime_and_plain([(i, m, 1, {}) for i, m in enumerate(models)], steps, chunk)
    for r in out:
        m = models[r.pop("label")]
        r.update(model=m, nodes=len(onnx.load(str(m)).graph.node))
    return out


def profile_ops(model: Path, ticks: int, folder: Path) -> tuple[list[tuple], float, int]:
    """onnxruntime's own profile (``enable_profiling``) of ``ticks`` plain runs with the
    runtime's default settings: ``([(op type, nodes, us per tick, share)], node time per
    tick in us, nodes run per tick)``, op types by time."""
    import json

    import onnxruntime as ort

    from dnc_policy.contract import read_contract
    from dnc_policy.runtime import session_options
    opts = session_options(1)
    opts.enable_profiling = True
    opts.profile_file_prefix = str(folder / "ort_profile")
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    feed = zero_feed(read_contract(sess))
    for _ in range(ticks):
        sess.run(None, feed)
    trace = json.loads(Path(sess.end_profiling()).read_text())
    per_op: dict[str, list[float]] = {}
    for ev in trace:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            per_op.setdefault(ev["args"]["op_name"], []).append(float(ev["dur"]))
    total = sum(sum(v) for v in per_op.values()) / ticks
    rows = sorted(((op, len(v) // ticks, sum(v) / ticks, sum(v) / ticks / total)
                   for op, v in per_op.items()), key=lambda r: -r[2])
    return rows, total, sum(len(v) for v in per_op.values()) // ticks


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
    p.add_argument("--options", action="store_true",
                   help="instead: onnxruntime session settings side by side, each through "
                        "PolicyRuntime.step and a plain session.run")
    p.add_argument("--profile", type=int, default=0, metavar="TICKS",
                   help="instead: onnxruntime's profile of TICKS plain runs, time per op "
                        "type")
    p.add_argument("--against", nargs="+", default=[], metavar="MODEL",
                   help="instead: these models beside the first, each through "
                        "PolicyRuntime.step and a plain session.run, interleaved")
    a = p.parse_args(argv)
    if a.steps < 1 or a.profile < 0:
        p.error("--steps must be >= 1 and --profile >= 0")
    import onnx

    from dnc_policy.contract import ContractError

    torch.set_num_threads(1)
    model = Path(a.model)
    models = [model] + [Path(m) for m in a.against]
    try:  # a missing or broken model is one line, before any timing
        runtimes = [PolicyRuntime(m, providers=["CPUExecutionProvider"], batch=1, threads=1)
                    for m in models]
    except (ContractError, FileNotFoundError) as e:
        p.exit(2, f"error: {e}\n")
    rt = runtimes[0]
    nodes = len(onnx.load(str(model)).graph.node)
    if a.against:
        print(f"export.bench --against: {len(models)} models, batch 1, 1 thread, {a.steps} "
              "ticks per model and side, interleaved in chunks of 250")
        print(f"  {'model':40s} {'nodes':>5s} {'PolicyRuntime.step':>22s} "
              f"{'plain session.run':>22s} {'step p50 / first':>17s}")
        print(f"  {'':40s} {'':5s} {'p50 us':>10s} {'p99 us':>11s} {'p50 us':>10s} "
              f"{'p99 us':>11s}")
        rows = models_table(models, a.steps)
        for r in rows:
            print(f"  {str(r['model'])[-40:]:40s} {r['nodes']:5d} {r['runtime_p50']:10.1f} "
                  f"{r['runtime_p99']:11.1f} {r['plain_p50']:10.1f} {r['plain_p99']:11.1f} "
                  f"{r['runtime_p50'] / rows[0]['runtime_p50']:17.3f}")
        return
    if a.options:
        print(f"export.bench --options: {model} ({nodes} nodes), batch 1, {a.steps} ticks "
              "per row and side, interleaved in chunks of 250")
        print(f"  {'session settings':40s} {'PolicyRuntime.step':>22s} {'plain session.run':>22s}"
              f" {'step/run':>9s}")
        print(f"  {'':40s} {'p50 us':>10s} {'p99 us':>11s} {'p50 us':>10s} {'p99 us':>11s}")
        for r in options_table(model, a.steps):
            print(f"  {r['variant']:40s} {r['runtime_p50']:10.1f} {r['runtime_p99']:11.1f} "
                  f"{r['plain_p50']:10.1f} {r['plain_p99']:11.1f} "
                  f"{r['runtime_p50'] / r['plain_p50']:9.2f}")
        print("  target: PolicyRuntime.step p50 <= 40 us")
        return
    if a.profile:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            rows, total, per_tick = profile_ops(model, a.profile, Path(tmp))
        print(f"export.bench --profile: {model}, {a.profile} plain runs, onnxruntime's "
              f"profile: {per_tick} nodes run per tick, {total:.1f} us of node time per tick "
              "(the profiler's own timing adds to every node: read the shares)")
        print(f"  {'op type':16s} {'nodes':>6s} {'us/tick':>9s} {'share':>7s}")
        for op, n, us, share in rows:
            print(f"  {op:16s} {n:6d} {us:9.1f} {share:7.1%}")
        return
    policy, where = _find_checkpoint(model, rt.contract, a.checkpoint)
    times = time_runtime_vs_eager(rt, policy, a.steps)
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
        print(f"  PyTorch eager step ({Path(where).name})       p50 {e50:7.1f} us   "
              f"p99 {e99:7.1f} us")
        print(f"  eager / runtime (p50): {e50 / r50:.1f}x")
    print("  targets: runtime p50 <= 40 us, >= 5x faster than eager")
    if a.gpu:
        gpu_table(str(model), a.steps)


if __name__ == "__main__":
    main()
