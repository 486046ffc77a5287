# Issue 16 (tried, not kept): PolicyRuntime.step with the symbolic batch dimension fixed
# to 1 at session creation, against the dynamic graph: parity over 2000 ticks, the tick
# time interleaved (20 rounds of 500 ticks each), and the optimised node counts.
# Usage: PYTHONPATH=ros2_ws/src/dnc_policy python free_dim.py MODEL.onnx
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import dnc_policy.runtime as R

SHAPE_OPS = ("Shape", "Gather", "Concat", "Reshape", "Unsqueeze", "Squeeze", "Expand",
             "Slice", "ConstantOfShape")
model = sys.argv[1]
dynamic = R.session_options


def fixed(threads=1, session=None):
    opts = dynamic(threads, session)
    opts.add_free_dimension_override_by_name("batch", 1)
    return opts


a = R.PolicyRuntime(model, threads=1)
R.session_options = fixed
b = R.PolicyRuntime(model, threads=1)
R.session_options = dynamic
obs = np.random.default_rng(0).uniform(-1, 1, (256, 1, a.obs_dim)).astype(np.float32)
out_a = np.zeros(a.outputs["action"].shape, a.outputs["action"].dtype)
out_b = out_a.copy()
worst, same = 0.0, 0
for i in range(2000):
    x = a.step(obs[i % 256], out=out_a, checked=True).copy()
    y = b.step(obs[i % 256], out=out_b, checked=True)
    worst = max(worst, float(np.abs(a.outputs["value"] - b.outputs["value"]).max()))
    same += bool((x == y).all())
sa, sb = a.snapshot(), b.snapshot()
print("parity 2000 steps: max |dvalue|", worst, "actions equal", same, "max dstate",
      max(float(np.abs(sa[k] - sb[k]).max()) for k in sa))
times = {"dynamic": [], "fixed": []}
for _ in range(20):
    for name, rt, out in (("dynamic", a, out_a), ("fixed", b, out_b)):
        t0 = time.perf_counter()
        for i in range(500):
            rt.step(obs[i % 256], out=out, checked=True)
        times[name].append((time.perf_counter() - t0) / 500 * 1e6)
d, f = np.median(times["dynamic"]), np.median(times["fixed"])
print(f"step us median: dynamic {d:.1f}  batch fixed to 1 {f:.1f}  ratio {f / d:.2f}")
with tempfile.TemporaryDirectory() as tmp:
    for name, fn in (("dynamic", dynamic), ("fixed", fixed)):
        opts = fn(1)
        opts.optimized_model_filepath = str(Path(tmp) / f"{name}.onnx")
        ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        nodes = onnx.load(opts.optimized_model_filepath).graph.node
        print(name, "nodes after optimisation", len(nodes), "shape ops",
              sum(n.op_type in SHAPE_OPS for n in nodes))
