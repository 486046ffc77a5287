"""Probe (2026-12-07): a compiled DNC replay (forward + backward of one PPO minibatch, B=8
sequences x T=32 steps, the PPO default DNC sizes without de-allocation), the per-step
compiled step (K=1) against one compiled graph per K steps. Alone on the machine, one
thread; medians over 15 interleaved repeats. Run: python docs/results/issue11_bench/chunk_probe.py 1,4,8,16,32

Written before compile_chunk existed, this probe holds its own copy of the chunked unroll
(``chunk`` below) so that the saved figures stay the ones it printed; the project's
version is ``RecurrentCore.compile_step(chunk=K)``, tested equal to the eager unroll in
tests/test_cores.py."""
import statistics, sys, time
import torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
from dnc_core import make_core
from dnc_core.core import apply_reset
torch.set_num_threads(1)
torch.manual_seed(0)
B, T, D = 8, 32, 4
Ks = [int(k) for k in sys.argv[1].split(",")] if len(sys.argv) > 1 else [1, 4, 8, 16, 32]
core = make_core("dnc", input_size=D, hidden_size=64, memory_slots=16, word_size=16,
                 read_heads=1)
head = torch.nn.Linear(core.feature_size, 1)

def chunk(xs, state, resets):
    fs = []
    for t in range(xs.shape[1]):
        state = apply_reset(state, resets[:, t])
        f, state = core._step(xs[:, t], state)
        fs.append(f)
    return torch.stack(fs, 1), state

compiled = {}
def unroll(K, xs, state, resets):
    if K == 1:
        return core.unroll(xs, state, resets)
    fn = compiled.setdefault(K, torch.compile(chunk, dynamic=False))
    outs = []
    for s in range(0, xs.shape[1], K):
        f, state = fn(xs[:, s:s + K], state, resets[:, s:s + K])
        outs.append(f)
    return torch.cat(outs, 1), state

core.compile_step()
xs = torch.randn(B, T, D)
resets = torch.zeros(B, T, dtype=torch.bool); resets[:, 0] = True; resets[2, 11] = True
s0 = core.initial_state(B)
def run(K):
    for p in list(core.parameters()) + list(head.parameters()):
        p.grad = None
    f, st = unroll(K, xs, s0, resets)
    loss = head(f).square().mean()
    loss.backward()
    return loss.item(), [p.grad.clone() for p in core.parameters()]

ref_loss, ref_g = None, None
t0 = time.perf_counter()
for K in Ks:
    t = time.perf_counter()
    l, g = run(K); run(K)
    if ref_loss is None:
        ref_loss, ref_g = l, g
    err = max((a - b).abs().max().item() for a, b in zip(g, ref_g))
    print(f"K={K}: warm-up (compile) {time.perf_counter() - t:.1f} s, loss {l:.6f} "
          f"(K={Ks[0]}: {ref_loss:.6f}), max grad diff {err:.2e}", flush=True)
times = {K: [] for K in Ks}
for rep in range(15):
    for K in Ks:
        t = time.perf_counter(); run(K); times[K].append(time.perf_counter() - t)
base = statistics.median(times[Ks[0]])
for K in Ks:
    m = statistics.median(times[K])
    print(f"K={K:2d}: median {m * 1000:.1f} ms per minibatch fwd+bwd, {base / m:.2f}x K={Ks[0]}")
