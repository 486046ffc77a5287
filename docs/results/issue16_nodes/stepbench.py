"""The DNC step before (b906793) and after (e2d1ac5) the row-shaped write weights, side by
side in one process: eager forward+backward of a 32-step unroll at batch 16 (PPO's
minibatch shape), the same weights, interleaved; median of the rounds. The old package
is that commit's dnc_core under another name:

    git archive b906793 dnc_core | tar -x -C /tmp/s37/oldpkg
    mv /tmp/s37/oldpkg/dnc_core /tmp/s37/oldpkg/dnc_core_old
    PYTHONPATH=. python docs/results/issue16_nodes/stepbench.py 40
"""
import sys
import time

import numpy as np
import torch

import dnc_core.dnc as new

sys.path.insert(0, "/tmp/s37/oldpkg")
import dnc_core_old.dnc as old  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(0)
cfg = dict(input_size=7, hidden_size=64, memory_slots=16, word_size=16, read_heads=1,
           deallocation=True)
a, b = old.DNCCore(**cfg), new.DNCCore(**cfg)
b.load_state_dict(a.state_dict())
xs = torch.randn(16, 32, 7)


def run(core):
    f, _ = core.unroll(xs, core.initial_state(16))
    f.square().mean().backward()


with torch.no_grad():
    fa, _ = a.unroll(xs, a.initial_state(16))
    fb, _ = b.unroll(xs, b.initial_state(16))
print("max |features old - new|:", float((fa - fb).abs().max()))
for _ in range(3):
    run(a)
    run(b)
t = {"old": [], "new": []}
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 30):
    for name, core in (("old", a), ("new", b)):
        s = time.perf_counter()
        run(core)
        t[name].append(time.perf_counter() - s)
mo, mn = np.median(t["old"]) * 1e3, np.median(t["new"]) * 1e3
print(f"eager fwd+bwd, 32 steps x batch 16, 1 thread, median of {len(t['old'])}: "
      f"old {mo:.1f} ms, new {mn:.1f} ms, new/old {mn / mo:.3f}")
