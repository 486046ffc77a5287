"""Export a checkpoint to a self-describing ONNX policy: one control tick with the memory
as explicit state (DESIGN.md §4).

    python -m export.onnx runs/<run>/checkpoints/latest.pt            # -> runs/<run>/policy.onnx
    python -m export.onnx runs/<run>                                  # the same
    python -m export.onnx ~/best.pt                                   # -> ~/best.onnx
    python -m export.onnx CKPT -o policy.onnx --parity-steps 1000

Inputs ``obs [B, obs_dim]`` (raw: the normaliser is in the graph), ``reset [B]`` and
``state_in.<name>`` per state tensor; outputs ``action`` (the deterministic action,
already clipped to the bounds), ``value``, the distribution parameters (``logits``, or
``action_mean`` and ``action_log_std``) and ``state_out.<name>``. The batch axis is
dynamic. ``metadata_props["dnc_policy.contract"]`` holds the JSON contract a runtime
validates the file against (docs/ONNX.md).

Default output (without ``-o``): ``<run>/policy.onnx`` for a checkpoint at
``<run>/checkpoints/<name>.pt`` (or a run folder given as ``<run>``), else ``<name>.onnx``
next to the checkpoint file.

Every option, the checkpoint and its env, and the output (a name ending in ``.onnx``,
not a folder, not the checkpoint) are checked before any file is touched. Temporary
files an interrupted export left beside the output (``.<name>.<random>.tmp``) are
removed. The model is written to such a temporary file and checked there:
``onnx.checker`` (full check), then parity with the PyTorch policy over consecutive steps
of the checkpoint's own env, with resets at random steps, at batch 1 and 4; non-finite
outputs on either side fail it. Only a model that passes is renamed over the output
(atomically): a failed export exits non-zero and leaves an existing file as it was.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from dnc_policy.contract import (
    CONTRACT_KEY,
    CONTRACT_VERSION,
    action_dtype,
    action_shape,
    distribution_outputs,
    write_contract,
)
from dnc_policy.contract import io_names as contract_io_names
from torch import Tensor, nn

from dnc_core import ActorCritic
from dnc_core.policy import deterministic_action
from export.parity import check_parity

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

OPSET = 18


class PolicyTick(nn.Module):
    """One control tick of a policy as a module with flat tensor inputs and outputs."""

    def __init__(self, policy: ActorCritic):
        super().__init__()
        self.policy = policy

    def forward(self, obs: Tensor, reset: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        p = self.policy
        out, new_state = p(obs, p.state_type(*state), reset)
        action = p.env_action(deterministic_action(p.action, out.dist))
        if p.action.kind == "box":
            params = (out.dist, out.log_std.expand_as(out.dist))
        else:
            params = (out.dist,)
        return (action, out.value) + params + tuple(new_state)


def _softplus(self, beta: float = 1.0, threshold: float = 20.0):
    """aten.softplus as one ONNX ``Softplus`` (the default translation adds a Greater
    and a Where for PyTorch's linear branch above ``threshold``). ONNX Runtime's
    Softplus is computed stably (softplus(100) = 100, not inf), so for x > threshold it
    differs from PyTorch's x by log1p(exp(-x)) < 2.1e-9: nothing in float32."""
    from onnxscript import opset18 as op

    if beta != 1.0:
        raise NotImplementedError(f"softplus with beta={beta} (the DNC uses beta=1)")
    return op.Softplus(self)


def _translations() -> dict:
    return {torch.ops.aten.softplus.default: _softplus}


def simplify(model):
    """Fold every constant subexpression (whatever its size: the exporter's optimizer
    leaves e.g. the concatenation of the LSTM's two weight matrices in the graph), merge
    duplicate subexpressions and drop the Reshapes that keep their input's shape
    (:func:`drop_noop_reshapes`). Returns the new ``ModelProto``."""
    import onnx_ir as ir
    import onnx_ir.passes.common as passes
    import onnxscript.optimizer

    model = onnxscript.optimizer.optimize(model, input_size_limit=1 << 24,
                                          output_size_limit=1 << 24)
    graph = ir.serde.deserialize_model(model)
    passes.CommonSubexpressionEliminationPass()(graph)
    drop_noop_reshapes(graph.graph)
    passes.RemoveUnusedNodesPass()(graph)
    return ir.serde.serialize_model(graph)


def _same_shape(a, b) -> bool:
    """Whether two ``onnx_ir`` shapes are known to be equal: the same rank and, per axis,
    the same size or the same named symbolic size (the exporter's ``batch``)."""
    if a is None or b is None or len(a) != len(b):
        return False
    for x, y in zip(a.dims, b.dims):
        if isinstance(x, int) or isinstance(y, int):
            if x != y:
                return False
        elif x.value is None or x.value != y.value:
            return False
    return True


def drop_noop_reshapes(graph) -> int:
    """Remove each Reshape whose output has its input's shape (known from the exporter's
    shapes, named symbolic sizes included): its users read the input instead. The
    exporter leaves such a node where two reshapes compose to the identity (the DNC's
    read vectors, flattened for the reset and again for the controller). A Reshape that
    writes a graph output is kept (the output's name must stay). Exact: a Reshape moves
    no value. Returns how many were removed."""
    removed = 0
    for node in list(graph):
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx"):
            continue
        src, dst = node.inputs[0], node.outputs[0]
        if src is None or dst.is_graph_output() or not _same_shape(src.shape, dst.shape):
            continue
        dst.replace_all_uses_with(src)
        graph.remove(node, safe=True)
        removed += 1
    return removed


def io_names(policy: ActorCritic) -> tuple[list[str], list[str]]:
    """The graph's input and output names for ``policy`` (the contract's :func:`io_names`)."""
    return contract_io_names([n for n, _ in policy.state_spec], policy.action.kind)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"torch": str(torch.__version__)}
    for pkg in ("onnx", "onnxruntime", "dnc-policy-workstation"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def build_contract(policy: ActorCritic, ckpt: dict, ckpt_sha256: str) -> dict:
    """The JSON contract: everything a runtime needs to know about the file."""
    inputs, outputs = io_names(policy)
    spec = policy.action
    norm = policy.obs_norm
    return {
        "contract_version": CONTRACT_VERSION,
        "obs_dim": policy.obs_dim,
        "observation_space": ckpt["observation_space"],
        "action_space": ckpt["action_space"],
        "action": {**spec.to_dict(), "dtype": action_dtype(spec.kind),
                   "shape": action_shape(spec.kind, spec.dim)},
        "distribution": {"kind": spec.kind,
                         "outputs": distribution_outputs(spec.kind)},
        "state": [{"name": n, "shape": list(s)} for n, s in policy.state_spec],
        "debug_state": list(policy.core.debug_state),
        "state_bounds": {n: dict(b) for n, b in policy.state_bounds.items()},
        "inputs": inputs,
        "outputs": outputs,
        "core": {"kind": policy.core.kind, "config": policy.core.config()},
        # A separate critic core (its state entries are the critic_ ones), or null.
        "critic_core": (None if policy.critic_core is None else
                        {"kind": policy.critic_core.kind, "config": policy.critic_core.config()}),
        "env": {"id": ckpt["env"], "kwargs": ckpt["env_kwargs"]},
        "obs_normalizer": {"enabled": policy.normalize_obs, "clip": norm.clip, "eps": norm.eps,
                           "count": float(norm.count), "mean": norm.mean.tolist(),
                           "var": norm.var.tolist()},
        "checkpoint": {"sha256": ckpt_sha256, "global_step": ckpt["global_step"],
                       "versions": ckpt["versions"]},
        "exporter": {"opset": OPSET, "versions": _versions(),
                     "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_policy(policy: ActorCritic, contract: dict, output: str | Path) -> Path:
    """Trace one tick with ``torch.onnx.export`` (dynamo, dynamic batch), simplify the
    graph (:func:`simplify`), attach the contract, run ``onnx.checker`` (full check) and
    write the file atomically."""
    from training.checkpoint import atomic_write

    model = build_model(policy, contract)
    return atomic_write(output, lambda f: f.write(model.SerializeToString()))


def build_model(policy: ActorCritic, contract: dict):
    """The ``onnx.ModelProto`` of :func:`export_policy`, checked by ``onnx.checker``
    (full check; raises ``onnx.checker.ValidationError``), not written anywhere."""
    import onnx

    policy = policy.cpu().float().eval()
    tick = PolicyTick(policy).eval()
    inputs, outputs = io_names(policy)
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = (torch.zeros(2, policy.obs_dim), torch.zeros(2), tuple(policy.initial_state(2)))
    dynamic = ({0: batch}, {0: batch}, tuple({0: batch} for _ in policy.state_spec))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = Path(tmp) / "raw.onnx"
        torch.onnx.export(tick, example, str(raw), input_names=inputs, output_names=outputs,
                          dynamic_shapes=dynamic, opset_version=OPSET, dynamo=True,
                          external_data=False, verbose=False,
                          custom_translation_table=_translations())
        model = simplify(onnx.load(str(raw)))
    # Later opset conversions may rename; make sure the graph has exactly our names.
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    if got_in != inputs or got_out != outputs:
        raise RuntimeError(f"exported graph has inputs {got_in} / outputs {got_out}, "
                           f"expected {inputs} / {outputs}")
    model.producer_name = "dnc-policy export.onnx"
    model.doc_string = (f"dnc-policy: {contract['core']['kind']} policy for "
                        f"{contract['env']['id']}; contract in metadata_props[{CONTRACT_KEY!r}]")
    write_contract(model, contract)  # checked against the runtime's schema
    onnx.checker.check_model(model, full_check=True)
    return model


MAX_PARITY_STEPS = 1_000_000
MAX_BATCH = 4096  # the graph's dynamic batch axis (export_policy)


def default_output(checkpoint: str | Path) -> Path:
    """Where ``export.onnx`` writes without ``-o``: ``<run>/policy.onnx`` for a checkpoint
    at ``<run>/checkpoints/<name>.pt``, else ``<name>.onnx`` next to the checkpoint."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent / "policy.onnx"
    return checkpoint.with_suffix(".onnx")


def output_problem(output: Path, checkpoint: Path) -> str | None:
    """Why ``output`` cannot be written (one line), or None."""
    if output.exists() and output.is_dir():
        return f"output {str(output)!r} is a folder"
    if output.exists() and output.resolve() == checkpoint.resolve():
        return f"output {str(output)!r} is the checkpoint itself"
    if output.suffix.lower() != ".onnx":
        return (f"output {str(output)!r} does not end in .onnx: expected the name of an ONNX "
                "file (e.g. -o policy.onnx), so that no other file is overwritten")
    folder = output.parent
    while not folder.exists():  # the nearest existing ancestor (folders are created)
        folder = folder.parent
    if not folder.is_dir():
        return f"output {str(output)!r}: {str(folder)!r} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"output {str(output)!r}: folder {str(folder)!r} is not writable"
    return None


def temp_pattern(output: Path) -> str:
    """The glob of the temporary files an export to ``output`` writes beside it
    (``.<name>.<random>.tmp``, as ``tempfile.mkstemp`` names them in :func:`main`)."""
    return f".{output.name}.*.tmp"


def _locked(fd: int) -> bool:
    """Take an exclusive, non-blocking lock on ``fd``: False if another process holds
    one (a running export keeps its own temporary file locked until it ends)."""
    if fcntl is None:  # no flock (Windows): every match counts as stale
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def remove_stale_temps(output: Path) -> list[Path]:
    """Remove the temporary files an interrupted export (``kill -9``, a power cut) left
    beside ``output``: only names of :func:`temp_pattern`, and only those no running
    export holds. Returns what was removed."""
    removed = []
    for stale in sorted(output.parent.glob(temp_pattern(output))):
        try:
            fd = os.open(stale, os.O_RDONLY)
        except OSError:  # gone already, or not ours to read
            continue
        try:
            if _locked(fd) and stale.is_file():
                stale.unlink(missing_ok=True)
                removed.append(stale)
        finally:
            os.close(fd)
    return removed


def _batch_sizes(text: str) -> list[int]:
    """``--batches``: comma-separated batch sizes, each 1 to MAX_BATCH."""
    parts = [x.strip() for x in text.split(",")]
    if not text.strip() or not all(x.isdigit() and 1 <= int(x) <= MAX_BATCH for x in parts):
        raise argparse.ArgumentTypeError(f"expects comma-separated batch sizes from 1 to "
                                         f"{MAX_BATCH} (e.g. 1,4), got {text!r}")
    return [int(x) for x in parts]


def _parser() -> argparse.ArgumentParser:
    from training.evaluate import SEED_MAX, bounded_int

    paras = __doc__.strip().split("\n\n")  # the examples, the output rule, the checks
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(paras[1:2] + paras[-2:]))
    p.add_argument("checkpoint", help="checkpoint file or run folder")
    p.add_argument("-o", "--output",
                   help="the ONNX file to write, a name ending in .onnx (default: "
                        "<run>/policy.onnx for <run>/checkpoints/<name>.pt or a run folder "
                        "<run>; <name>.onnx next to any other checkpoint file). An existing "
                        "file is replaced only by a model that passed the checks")
    p.add_argument("--parity-steps", type=bounded_int(1, MAX_PARITY_STEPS), default=1000,
                   help=f"steps of the parity check, 1 to {MAX_PARITY_STEPS:,} (default 1000)")
    p.add_argument("--batches", type=_batch_sizes, default=[1, 4],
                   help=f"batch sizes of the parity check, each 1 to {MAX_BATCH} "
                        "(default 1,4)")
    p.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=0,
                   help="seed of the parity check's episodes and resets, 0 to 2**32 - 1")
    return p


def main(argv=None) -> int:
    import onnx
    from dnc_policy.files import current_umask, fsync_dir

    from training.checkpoint import CheckpointError, load_policy, resolve_path
    from training.envs import make_env
    from training.evaluate import EnvIdError, check_env_id

    p = _parser()
    a = p.parse_args(argv)
    # Everything is checked before any file is touched.
    try:
        ckpt_path = resolve_path(a.checkpoint)
        policy, ckpt = load_policy(ckpt_path)
        check_env_id(ckpt["env"], f"checkpoint {str(ckpt_path)!r} was trained on")
        make_env(ckpt["env"], ckpt["env_kwargs"],
                 f"checkpoint {str(ckpt_path)!r}: env_kwargs {ckpt['env_kwargs']!r}").close()
    except (CheckpointError, EnvIdError, ValueError) as e:
        p.exit(2, f"error: {e}\n")
    output = Path(a.output) if a.output else default_output(ckpt_path)
    problem = output_problem(output, ckpt_path)
    if problem:
        p.exit(2, f"error: {problem}\n")

    torch.set_num_threads(2)
    contract = build_contract(policy, ckpt, sha256_of(ckpt_path))
    existing = output.is_file()
    print(f"exporting {ckpt_path} ({policy.core.kind}, {ckpt['env']}) -> {output}"
          + (" (replacing it if the new model passes the checks)" if existing else ""))
    output.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temps(output):
        print(f"  removed {stale.name}, left beside the output by an interrupted export")
    # The model goes to a temporary file beside the output, locked (flock) while this
    # export runs so that another export's clean-up leaves it alone, and is renamed
    # over the output only once it passed the checks.
    fd, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    tmp = Path(name)
    ok = False
    try:
        _locked(fd)
        os.fchmod(fd, 0o666 & ~current_umask())  # a new file's usual mode, not 0600
        try:
            model = build_model(policy, contract)
        except onnx.checker.ValidationError as e:
            print(f"error: onnx.checker refused the exported model: "
                  f"{str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
            print(f"FAILED: {output} " + ("left unchanged" if existing else "not written"))
            return 1
        data = model.SerializeToString()
        with os.fdopen(os.dup(fd), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        print(f"  onnx.checker full check: ok; opset {OPSET}; {len(data) / 1024:.0f} KiB")
        ok = True
        for b in a.batches:
            r = check_parity(policy, tmp, ckpt["env"], ckpt["env_kwargs"], a.parity_steps, b,
                             a.seed)
            print("  parity " + r.line())
            ok &= r.ok
        if ok:
            os.replace(tmp, output)
            fsync_dir(output.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
        os.close(fd)
    if ok:
        print(f"OK: {output}")
        return 0
    print(f"PARITY FAILED: {output} "
          + ("left unchanged" if existing else "not written"))
    return 1


if __name__ == "__main__":
    sys.exit(main())
