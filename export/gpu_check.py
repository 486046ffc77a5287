"""GPU check: ``python -m export.gpu_check`` (``make gpu-check``) on a machine with an
NVIDIA GPU prints one markdown table of the exported policy on each execution provider.

    python -m export.gpu_check                                  # the fresh default DNC policy
    python -m export.gpu_check --checkpoint runs/<run>          # a trained one, exported here
    python -m export.gpu_check --checkpoint CKPT --model runs/<run>/policy.onnx
    python -m export.gpu_check --providers cpu --train-seconds 0 # CPU rows only: no GPU needed

The policy: ``--checkpoint`` (a file or a run folder), exported to ``<out>/policy.onnx``
(or ``--model``, a file exported from that checkpoint); without one, the default DNC
policy of ``training.config`` built by the trainer's own builder, freshly initialised
(seed ``--seed``) and saved as ``<out>/checkpoints/latest.pt``. Its actor head is scaled
to gain 1 (the trainer starts it at 0.01): untrained logits are otherwise near ties, and
the parity check counts every flipped discrete action.

Rows, at each ``--batch`` (default 1 and 64): the CPU provider (the reference), the CUDA
provider without and with CUDA graphs, the TensorRT provider with FP16 off and on (when the
onnxruntime build has it; engines cached in ``<out>/trt_cache/{fp32,fp16}``); each with
the median and p99 latency of ``--steps`` timed ticks after ``--warmup`` untimed ones, the
time to the first tick (session creation plus the first run: a TensorRT engine build
shows here), and the parity check. Plus one row: ``--train-seconds`` of ``training.ppo``
(its embedded default) on CUDA and on the CPU, env steps/s.

Every session runs as a robot tick does: the batch fixed (the graph's ``batch`` dimension
overridden, so no shape is computed at run time), every input and output bound once
(IOBinding) to a buffer that never moves (device memory on a GPU provider), the state
ping-ponging between two buffer sets through two bindings; a tick copies the observation
in, runs, and copies the action out. CUDA graphs (``enable_cuda_graph``) need exactly
that: fixed shapes and fixed device addresses; each of the two bindings is captured as
its own graph (run option ``gpu_graph_id`` 1 and 2), and only the contents of the
observation and reset buffers change between replays.

Parity: the same check as ``export.onnx`` (its report, tolerance and difference
functions) through each row's own bound session: ``--parity-steps`` steps of the
checkpoint's env at that batch, driven by the PyTorch policy on the CPU, resets at
episode starts and at random steps; each side carries its own state. A row passes when
values, distribution parameters and actions agree within export's tolerance
(``export.parity.TOLERANCE``) and nothing is NaN; the largest state difference is shown
too. FP16 rows are reported, not required to pass.

Exit status: 0 when the table is printed and every required parity check passed; 1 with
one line on stderr where there is no GPU (torch without CUDA and onnxruntime without the
CUDA provider; ``--providers cpu`` needs none), or when a required parity check failed;
2 for a bad argument, a checkpoint or model that cannot be used, or a bad
``--train-set`` (one line, before anything touches a GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from dnc_policy.contract import STATE_IN, STATE_OUT, distribution_outputs

from export.onnx import (
    MAX_PARITY_STEPS,
    _batch_sizes,
    build_contract,
    export_policy,
    output_problem,
    sha256_of,
)
from export.parity import TOLERANCE, ParityReport, check_parity
from training.evaluate import SEED_MAX, bounded_int

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
# The trainer run for the training row: its embedded default, timed from its first logged
# update for --train-seconds, then interrupted; the rate from its metrics.csv
# (training.bench.steady_rate) after TRAIN_WARMUP more updates.
# compile off on both devices: "auto" would compile on the CPU alone
TRAIN_FIXED = {"total_steps": 10**12, "stop_at_success": 0, "log_every": 1,
               "checkpoint_every": 10**12, "compile": "false"}
TRAIN_WARMUP = 2
TRAIN_START_TIMEOUT = 600.0  # seconds to the first logged update (imports, envs, CUDA init)


# --------------------------------------------------------------------------------------
# One session as a robot tick runs it
# --------------------------------------------------------------------------------------
class BoundSession:
    """An onnxruntime session at a fixed batch, run through IOBinding: every input and
    output bound once to a buffer that never moves (device memory for a GPU provider),
    the state in two buffer sets and two bindings (tick t reads set A and writes B, tick
    t+1 the reverse). With ``cuda_graph`` each binding replays its own CUDA graph
    (``gpu_graph_id`` 1 and 2). Raises ``RuntimeError`` when onnxruntime did not put the
    graph on the requested provider (it falls back to the CPU silently)."""

    def __init__(self, path: Path, providers: list, batch: int, threads: int = 1,
                 cuda_graph: bool = False):
        import onnx
        import onnxruntime as ort
        from dnc_policy.contract import check_graph, read_contract

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        dim = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type
        if dim.shape.dim[0].dim_param:  # the dynamic batch axis, fixed for this session
            opts.add_free_dimension_override_by_name(dim.shape.dim[0].dim_param, batch)
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        want = providers[0] if isinstance(providers[0], str) else providers[0][0]
        self.providers = self.session.get_providers()
        if self.providers[0] != want:
            raise RuntimeError(f"onnxruntime could not use {want} (no device, driver or "
                               f"libraries?) and fell back to {self.providers}")
        self.contract = read_contract(self.session)
        check_graph(self.session, self.contract)
        self.batch, self.obs_dim = batch, int(self.contract["obs_dim"])
        self.on_gpu = want in GPU_PROVIDERS
        device = "cuda" if self.on_gpu else "cpu"
        b = batch

        def buffer(shape, dtype=np.float32):
            if self.on_gpu:
                return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, device, 0)
            return ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, dtype))

        self.state_shapes = [(b,) + tuple(s["shape"]) for s in self.contract["state"]]
        names = [s["name"] for s in self.contract["state"]]
        self.head_names = [o for o in self.contract["outputs"] if not o.startswith(STATE_OUT)]
        out_type = {o.name: o.type for o in self.session.get_outputs()}
        out_shape = {o.name: [b] + [int(d) for d in o.shape[1:]]
                     for o in self.session.get_outputs()}
        self._obs, self._reset = buffer((b, self.obs_dim)), buffer((b,))
        self.heads = {n: buffer(out_shape[n], np.int64 if out_type[n] == "tensor(int64)"
                                else np.float32) for n in self.head_names}
        self.states = [[buffer(s) for s in self.state_shapes] for _ in range(2)]
        self.bindings, self.run_options = [], []
        for src, dst in ((0, 1), (1, 0)):
            io = self.session.io_binding()
            io.bind_ortvalue_input("obs", self._obs)
            io.bind_ortvalue_input("reset", self._reset)
            for name, s_in, s_out in zip(names, self.states[src], self.states[dst]):
                io.bind_ortvalue_input(STATE_IN + name, s_in)
                io.bind_ortvalue_output(STATE_OUT + name, s_out)
            for name, value in self.heads.items():
                io.bind_ortvalue_output(name, value)
            self.bindings.append(io)
            ro = ort.RunOptions()
            if cuda_graph:
                ro.add_run_config_entry("gpu_graph_id", str(src + 1))
            self.run_options.append(ro)
        self.reset_state()

    def reset_state(self) -> None:
        """Both state sets to the initial (zero) state; the next tick reads set 0."""
        for bufs in self.states:
            for shape, v in zip(self.state_shapes, bufs):
                v.update_inplace(np.zeros(shape, np.float32))
        self.current = 0

    def step(self, obs: np.ndarray, reset: np.ndarray) -> np.ndarray:
        """One tick (float32 ``obs [batch, obs_dim]``, ``reset [batch]``): the action, on
        the host."""
        self._obs.update_inplace(obs)
        self._reset.update_inplace(reset)
        self.session.run_with_iobinding(self.bindings[self.current],
                                        self.run_options[self.current])
        self.current = 1 - self.current
        return self.heads["action"].numpy()

    def head(self, name: str) -> np.ndarray:
        return self.heads[name].numpy()

    def state(self) -> list[np.ndarray]:
        """Host copies of the current state, in the contract's order."""
        return [v.numpy() for v in self.states[self.current]]


def time_steps(bound: BoundSession, steps: int, warmup: int, seed: int = 0) -> list[float]:
    """Seconds per tick (observation in, run, action out) of ``steps`` ticks after
    ``warmup`` untimed ones, from the initial state, no resets."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((64, bound.batch, bound.obs_dim)).astype(np.float32)
    no_reset = np.zeros(bound.batch, np.float32)
    bound.reset_state()
    for i in range(warmup):
        bound.step(obs[i % 64], no_reset)
    times = []
    for i in range(steps):
        t = time.perf_counter()
        bound.step(obs[i % 64], no_reset)
        times.append(time.perf_counter() - t)
    return times


def check_bound_parity(policy, bound: BoundSession, env_id: str, env_kwargs: dict,
                       steps: int = 1000, seed: int = 0, reset_prob: float = 0.02
                       ) -> ParityReport:
    """:func:`export.parity.check_parity` through ``bound`` (its batch) instead of export's
    plain CPU session: the same episodes, random resets, report and tolerances; the
    session is this row's own (IOBinding, device buffers, CUDA graphs)."""
    dist_names = distribution_outputs(policy.action.kind)
    bound.reset_state()

    def onnx_step(obs, reset):
        action = bound.step(obs, reset)
        return action, bound.head("value"), [bound.head(n) for n in dist_names], bound.state()

    return check_parity(policy, None, env_id, env_kwargs, steps=steps, batch=bound.batch,
                        seed=seed, reset_prob=reset_prob, onnx_step=onnx_step)


# --------------------------------------------------------------------------------------
# The rows
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowSpec:
    label: str
    key: str  # a key of PROVIDERS
    options: dict = dataclasses.field(default_factory=dict)
    cuda_graph: bool = False
    required: bool = True  # parity must pass (FP16 rows: reported only)

    def providers(self) -> list:
        main = (PROVIDERS[self.key], self.options)
        if self.key == "tensorrt":  # nodes TensorRT does not take run on CUDA
            return [main, ("CUDAExecutionProvider", {})]
        return [main]


def row_specs(keys: list[str], trt_cache: Path) -> list[RowSpec]:
    """The rows of one batch size, for the provider keys asked for."""
    rows = []
    if "cpu" in keys:
        rows.append(RowSpec("CPU EP", "cpu"))
    if "cuda" in keys:
        rows.append(RowSpec("CUDA EP", "cuda"))
        rows.append(RowSpec("CUDA EP + CUDA graphs", "cuda", {"enable_cuda_graph": "1"},
                            cuda_graph=True))
    if "tensorrt" in keys:
        for fp16 in (False, True):
            cache = trt_cache / ("fp16" if fp16 else "fp32")
            rows.append(RowSpec(f"TensorRT EP {'FP16' if fp16 else 'FP32'}", "tensorrt",
                                {"trt_engine_cache_enable": True,
                                 "trt_engine_cache_path": str(cache),
                                 "trt_timing_cache_enable": True,
                                 "trt_timing_cache_path": str(cache),
                                 "trt_fp16_enable": fp16}, required=not fp16))
    return rows


@dataclass
class Row:
    label: str
    batch: str
    p50_us: float | None = None
    p99_us: float | None = None
    first_s: float | None = None
    parity: ParityReport | None = None
    required: bool = True
    note: str = ""
    box: bool = False  # actions compared by value (Box), else counted mismatches

    @property
    def failed(self) -> bool:
        return self.required and self.parity is not None and not self.parity.ok


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def run_row(spec: RowSpec, model: Path, policy, env: dict, batch: int, a) -> Row:
    """Time and parity-check one provider configuration at one batch size."""
    import onnxruntime as ort

    row = Row(spec.label, str(batch), required=spec.required,
              box=policy.action.kind == "box")
    available = ort.get_available_providers()
    missing = [p if isinstance(p, str) else p[0] for p in spec.providers()
               if (p if isinstance(p, str) else p[0]) not in available]
    if missing:
        row.note = (f"n/a: onnxruntime {ort.__version__} has no {', '.join(missing)} "
                    "(onnxruntime-gpu: the gpu extra)")
        return row
    if "trt_engine_cache_path" in spec.options:
        Path(spec.options["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        bound = BoundSession(model, spec.providers(), batch, a.threads, spec.cuda_graph)
        bound.step(np.zeros((batch, bound.obs_dim), np.float32), np.ones(batch, np.float32))
        row.first_s = time.perf_counter() - start
        times = np.asarray(time_steps(bound, a.steps, a.warmup, a.seed)) * 1e6
        row.p50_us, row.p99_us = (float(x) for x in np.percentile(times, [50, 99]))
        row.parity = check_bound_parity(policy, bound, env["id"], env["kwargs"],
                                        a.parity_steps, a.seed)
        row.note = "+".join(p.replace("ExecutionProvider", "") for p in bound.providers)
    except Exception as e:  # onnxruntime's own error types: a capture or a build refused
        row.note = f"n/a: {_first_line(e)}"
    return row


# --------------------------------------------------------------------------------------
# The training row
# --------------------------------------------------------------------------------------
def train_rate(device: str, seconds: float, sets: list[str], workdir: Path) -> float:
    """Env steps/s of ``python -m training.ppo`` on ``device``: the trainer's own run, timed
    from its first logged update for ``seconds``, then interrupted (SIGINT); the rate of
    its metrics.csv after ``TRAIN_WARMUP`` more updates (``training.bench.steady_rate``).
    Raises RuntimeError (one line) if the run ends early or logs too few updates."""
    from training.bench import steady_rate

    workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{device}-", dir=workdir))  # this run's alone
    overrides = sets + [f"{k}={v}" for k, v in TRAIN_FIXED.items()] + [
        f"device={device}", f"run_dir={workdir}"]
    cmd = [sys.executable, "-m", "training.ppo", "--no-progress"]
    for item in overrides:
        cmd += ["--set", item]
    log_path = workdir / "train.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            end = time.monotonic() + TRAIN_START_TIMEOUT
            # Start-up ends after the warm-up updates (imports, TensorBoard's writer at the
            # first log, CUDA init and the first kernels): only then does the clock start.
            while _metrics_rows(workdir) <= TRAIN_WARMUP:
                if proc.poll() is not None:
                    tail = log_path.read_text().strip().splitlines()
                    raise RuntimeError(f"training.ppo on {device} exited ({proc.returncode}) "
                                       f"before its first update: "
                                       f"{tail[-1] if tail else 'no output'}")
                if time.monotonic() > end:
                    raise RuntimeError(f"training.ppo on {device}: {TRAIN_WARMUP + 1} updates "
                                       f"not logged within {TRAIN_START_TIMEOUT:.0f} s")
                time.sleep(0.2)
            time.sleep(seconds)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    csv = _metrics_csv(workdir)
    rows = _metrics_rows(workdir)
    if rows < TRAIN_WARMUP + 2:
        raise RuntimeError(f"training.ppo on {device}: {rows} updates in {seconds:g} s, "
                           f"{TRAIN_WARMUP + 2} needed to time (raise --train-seconds)")
    return steady_rate(str(csv), TRAIN_WARMUP)


def _metrics_csv(workdir: Path) -> Path | None:
    found = sorted(workdir.glob("*/metrics.csv"))
    return found[0] if found else None


def _metrics_rows(workdir: Path) -> int:
    csv = _metrics_csv(workdir)
    if csv is None:
        return 0
    lines = [ln for ln in csv.read_text().splitlines() if ln.strip()]
    return max(0, len(lines) - 1)


def training_row(devices: list[str], gpu: Gpu, a, workdir: Path) -> Row:
    from training.config import resolve

    cfg = resolve(None, a.train_set, algo="ppo")
    rates: dict[str, float | str] = {}
    for device in devices:
        if device == "cuda" and not gpu.torch_cuda:
            rates[device] = (f"n/a: torch {torch.__version__} has no CUDA (a CUDA build: "
                             "make setup TORCH_SPEC=torch)")
            continue
        print(f"gpu_check: {a.train_seconds:g} s of training.ppo on {device}",
              file=sys.stderr, flush=True)
        try:
            rates[device] = train_rate(device, a.train_seconds, a.train_set,
                                       workdir.resolve())
        except (RuntimeError, ValueError, OSError) as e:
            rates[device] = f"n/a: {' '.join(str(e).split())}"
    parts = [f"{d.upper()} {v:,.0f}" if isinstance(v, float) else f"{d.upper()} {v}"
             for d, v in rates.items()]
    note = " vs ".join(parts) + " env steps/s"
    if all(isinstance(rates.get(d), float) for d in ("cuda", "cpu")):
        note += f" ({rates['cuda'] / rates['cpu']:.2f}x)"
    note += (f"; {a.train_seconds:g} s each after start-up, {cfg.core} on {cfg.env}, "
             f"{cfg.threads} torch threads, first {TRAIN_WARMUP} updates not timed")
    label = "training.ppo, " + " vs ".join(d.upper() for d in devices)
    return Row(label, f"{cfg.num_envs} envs", note=note, required=False)


# --------------------------------------------------------------------------------------
# Where the GPU is
# --------------------------------------------------------------------------------------
@dataclass
class Gpu:
    torch_cuda: bool
    ort_providers: list[str]

    @property
    def ort_cuda(self) -> bool:
        return "CUDAExecutionProvider" in self.ort_providers

    @property
    def any(self) -> bool:
        return self.torch_cuda or self.ort_cuda


def probe() -> Gpu:
    import onnxruntime as ort

    return Gpu(bool(torch.cuda.is_available()), list(ort.get_available_providers()))


def no_gpu_message(gpu: Gpu) -> str:
    import onnxruntime as ort

    return (f"error: no NVIDIA GPU to check: torch {torch.__version__} has no CUDA "
            f"(torch.cuda.is_available() is False) and onnxruntime {ort.__version__} has no "
            f"CUDAExecutionProvider (it has {', '.join(gpu.ort_providers)}). On a machine "
            "with an NVIDIA GPU and its driver, install onnxruntime-gpu (the gpu extra) in "
            "place of onnxruntime (pip uninstall -y onnxruntime && pip install "
            "onnxruntime-gpu) and a CUDA build of torch (make clean && make setup "
            "TORCH_SPEC=torch); or run the CPU rows alone with --providers cpu")


def describe_machine(gpu: Gpu) -> str:
    import onnxruntime as ort

    parts = [f"torch {torch.__version__}"
             + (f" (CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)})"
                if gpu.torch_cuda else " (no CUDA)"),
             f"onnxruntime {ort.__version__} ({', '.join(gpu.ort_providers)})"]
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20, check=False)
            if out.returncode == 0 and out.stdout.strip():
                parts.append("nvidia-smi: " + out.stdout.strip().splitlines()[0])
        except (OSError, subprocess.TimeoutExpired):
            pass
    return ", ".join(parts)


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------
def _num(x: float | None, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def render_table(rows: list[Row], parity_steps: int) -> str:
    head = ["row", "batch", "p50 µs", "p99 µs", "first tick s",
            f"parity ({parity_steps} steps)", "max Δaction", "max Δvalue", "max Δdist",
            "max Δstate", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        p = r.parity
        cells = [r.label, r.batch, _num(r.p50_us, ".1f"), _num(r.p99_us, ".1f"),
                 # a few ms on a CPU (three significant digits), minutes for a TensorRT build
                 _num(r.first_s, ".3g" if (r.first_s or 0) < 1 else ".2f")]
        if p is None:
            cells += [""] * 5
        else:
            verdict = "PASS" if p.ok else "FAIL" if r.required else "FAIL (not required)"
            nonfinite = p.nonfinite_torch + p.nonfinite_onnx
            action = f"{p.max_action_diff:.2e}" if r.box else f"{p.action_mismatches} mismatches"
            cells += [verdict + (f", {nonfinite} non-finite" if nonfinite else ""), action,
                      f"{p.max_value_diff:.2e}", f"{p.max_dist_diff:.2e}",
                      f"{p.max_state_diff:.2e}"]
        cells.append(r.note.replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line (argparse would print the usage first)."""
        self.exit(2, f"error: {message} (python -m export.gpu_check --help)\n")


def _providers(text: str) -> list[str]:
    """``--providers``: a comma-separated subset of cpu, cuda, tensorrt (or their
    onnxruntime names)."""
    by_name = {**{k: k for k in PROVIDERS}, **{v.lower(): k for k, v in PROVIDERS.items()}}
    out = []
    for part in [x.strip() for x in text.split(",")]:
        key = by_name.get(part.lower())
        if key is None:
            close = difflib.get_close_matches(part.lower(), list(by_name), n=1)
            hint = f" (did you mean {by_name[close[0]]!r}?)" if close else ""
            raise argparse.ArgumentTypeError(
                f"unknown provider {part!r}{hint}: expected a comma-separated subset of "
                f"{', '.join(PROVIDERS)} (e.g. cpu,cuda)")
        if key not in out:
            out.append(key)
    return out


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 (no training "
                                         f"row) to 3600, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    paras = __doc__.strip().split("\n\n")
    p = _Parser(prog="python -m export.gpu_check", description=paras[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="\n\n".join(paras[1:]))
    p.add_argument("--checkpoint", help="checkpoint file or run folder (default: the fresh "
                                        "default DNC policy)")
    p.add_argument("--model", help="an ONNX file exported from --checkpoint (default: "
                                   "export it to <out>/policy.onnx)")
    p.add_argument("--out", default="runs/gpu_check",
                   help="folder for the exported model, the fresh checkpoint, the TensorRT "
                        "engine cache, the training runs and gpu_check.md (default "
                        "runs/gpu_check)")
    p.add_argument("--providers", type=_providers, default=list(PROVIDERS),
                   help="comma-separated subset of cpu, cuda, tensorrt (default all three; "
                        "cpu alone needs no GPU)")
    p.add_argument("--batch", type=_batch_sizes, default=[1, 64],
                   help="comma-separated batch sizes, each 1 to 4096 (default 1,64)")
    p.add_argument("--steps", type=bounded_int(1, 10_000_000), default=5000,
                   help="timed ticks per row (default 5000)")
    p.add_argument("--warmup", type=bounded_int(0, 1_000_000), default=200,
                   help="untimed ticks before them (default 200)")
    p.add_argument("--parity-steps", type=bounded_int(1, MAX_PARITY_STEPS), default=1000,
                   help="steps of each row's parity check (default 1000)")
    p.add_argument("--threads", type=bounded_int(1, 256), default=1,
                   help="onnxruntime intra-op threads (default 1, as on the robot)")
    p.add_argument("--train-seconds", type=_seconds, default=60.0,
                   help="seconds of training.ppo per device for the training row (default "
                        "60; 0: no training row)")
    p.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for the training row (repeatable; as "
                        "training.ppo's --set)")
    p.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=0,
                   help="seed of the fresh policy's weights, the timed observations and "
                        "the parity episodes (default 0)")
    return p


@dataclass
class Source:
    """The policy under test: its checkpoint (None: a fresh one is made after the
    probe), the PyTorch policy and checkpoint dict once loaded, and the model (None:
    exported after the probe)."""

    checkpoint: Path | None
    model: Path | None
    policy: object = None
    ckpt: dict | None = None


def check_source(a, out: Path) -> Source:
    """Everything about the policy that can be checked without a GPU; ValueError (one
    line) when it cannot be used."""
    from dnc_policy.runtime import ContractError, PolicyRuntime

    from training.checkpoint import CheckpointError, load_policy, resolve_path
    from training.envs import make_env
    from training.evaluate import EnvIdError, check_env_id

    if a.model and not a.checkpoint:
        raise ValueError("--model needs --checkpoint: the PyTorch policy it was exported "
                         "from is the parity check's reference")
    src = Source(None, None)
    try:
        if a.checkpoint:
            src.checkpoint = resolve_path(a.checkpoint)
            src.policy, src.ckpt = load_policy(src.checkpoint)
            check_env_id(src.ckpt["env"], f"checkpoint {str(src.checkpoint)!r} was trained on")
            make_env(src.ckpt["env"], src.ckpt["env_kwargs"],
                     f"checkpoint {str(src.checkpoint)!r}: env_kwargs "
                     f"{src.ckpt['env_kwargs']!r}").close()
    except (CheckpointError, EnvIdError) as e:
        raise ValueError(str(e)) from None
    if a.model:
        model = Path(a.model)
        try:
            contract = PolicyRuntime(model, providers=["CPUExecutionProvider"]).contract
        except (ContractError, FileNotFoundError) as e:
            raise ValueError(f"--model: {e}") from None
        want = sha256_of(src.checkpoint)
        if contract.get("checkpoint", {}).get("sha256") != want:
            raise ValueError(f"--model {str(model)!r} was not exported from checkpoint "
                             f"{str(src.checkpoint)!r} (its contract's checkpoint sha256 "
                             "differs): the parity check would compare two policies")
        src.model = model
    else:
        problem = output_problem(out / "policy.onnx",
                                 src.checkpoint or out / "checkpoints" / "latest.pt")
        if problem:
            raise ValueError(f"--out: {problem}")
    return src


def check_train_sets(sets: list[str]) -> None:
    """``--train-set`` overrides as the trainer would read them (ValueError otherwise)."""
    from training.config import ConfigError, resolve

    for item in sets:
        key = item.split("=", 1)[0].strip()
        if key in TRAIN_FIXED or key in ("device", "run_dir"):
            raise ValueError(f"--train-set {item!r}: {key} is set by the check itself")
    try:
        resolve(None, sets, algo="ppo")
    except ConfigError as e:
        raise ValueError(f"--train-set: {e}") from None


def fresh_checkpoint(out: Path, seed: int) -> Path:
    """The default DNC policy (``training.config``'s embedded default, built by
    ``training.runner.build_policy``), freshly initialised with ``seed``, its actor head
    at gain 1, saved by the trainer's ``save_checkpoint`` as ``<out>/checkpoints/latest.pt``."""
    from torch import nn

    from training.config import TrainConfig
    from training.envs import make_env
    from training.run_files import save_checkpoint
    from training.runner import build_policy
    from training.spaces import ObsFlattener, action_spec

    cfg = dataclasses.replace(TrainConfig.default("ppo"), seed=seed).validate()
    env = make_env(cfg.env, cfg.env_kwargs, f"the default env {cfg.env}")
    flatten, spec = ObsFlattener(env.observation_space), action_spec(env.action_space)
    torch.manual_seed(cfg.seed)
    policy = build_policy(cfg, flatten.dim, spec)
    with torch.no_grad():  # gain 0.01 -> 1: decided actions, not near ties
        [m for m in policy.actor.modules() if isinstance(m, nn.Linear)][-1].weight.mul_(100.0)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
    path = save_checkpoint(cfg, policy, optimizer, out, flatten, env.observation_space,
                           env.action_space, 0, 0)
    env.close()
    return path


def main(argv=None) -> int:
    from training.checkpoint import load_policy

    p = _parser()
    a = p.parse_args(argv)
    out = Path(a.out)
    # Everything that can be wrong with the arguments is checked before any GPU probing.
    try:
        src = check_source(a, out)
        check_train_sets(a.train_set)
    except ValueError as e:
        p.exit(2, f"error: {e}\n")
    gpu = probe()
    cpu_only = a.providers == ["cpu"]
    if not cpu_only and not gpu.any:
        print(no_gpu_message(gpu), file=sys.stderr)
        return 1

    torch.set_num_threads(2)
    out.mkdir(parents=True, exist_ok=True)
    if src.checkpoint is None:
        src.checkpoint = fresh_checkpoint(out, a.seed)
        src.policy, src.ckpt = load_policy(src.checkpoint)
        what = f"the fresh default policy, seed {a.seed}, actor gain 1"
    else:
        what = str(src.checkpoint)
    if src.model is None:
        print(f"gpu_check: exporting {src.checkpoint} -> {out / 'policy.onnx'}",
              file=sys.stderr, flush=True)
        contract = build_contract(src.policy, src.ckpt, sha256_of(src.checkpoint))
        src.model = export_policy(src.policy, contract, out / "policy.onnx")
    env = {"id": src.ckpt["env"], "kwargs": src.ckpt["env_kwargs"]}
    core = src.policy.core
    rows = []
    for batch in a.batch:
        for spec in row_specs(a.providers, out / "trt_cache"):
            print(f"gpu_check: {spec.label}, batch {batch}", file=sys.stderr, flush=True)
            rows.append(run_row(spec, src.model, src.policy, env, batch, a))
    if a.train_seconds > 0:
        devices = ["cpu"] if cpu_only else ["cuda", "cpu"]
        rows.append(training_row(devices, gpu, a, out / "train"))
    text = "\n".join([
        f"export.gpu_check: {src.model} ({core.kind} {core.config()}, {env['id']}; {what})",
        describe_machine(gpu),
        (f"{a.steps} timed ticks per row after {a.warmup} warm-up ticks, batch fixed per "
         f"session, IOBinding; {a.threads} onnxruntime thread(s); parity vs PyTorch on the "
         f"CPU over {a.parity_steps} steps (export.onnx's check, tolerance {TOLERANCE:g})"),
        "", render_table(rows, a.parity_steps), ""])
    failed = [f"{r.label} batch {r.batch}" for r in rows if r.failed]
    text += (f"PARITY FAILED: {', '.join(failed)}\n" if failed
             else "parity: every required row that ran passed\n")
    print(text, end="")
    (out / "gpu_check.md").write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
