"""The ONNX policy contract: the one definition both sides use (DESIGN.md §4, docs/ONNX.md).

``export.onnx`` writes it and ``dnc_policy.runtime`` reads it, both through this module:
the metadata key, the contract version, the graph's input and output names, the schema and
its validation, and reading and writing the JSON. Pure Python (``json``, ``re``, ``math``):
no torch, no numpy, no onnx, so the exporter, the runtime and any tool can import it.

    contract = {...}                       # built by export.onnx.build_contract
    write_contract(model_proto, contract)  # checked, then metadata_props[CONTRACT_KEY]
    contract = read_contract(session)      # an onnxruntime.InferenceSession; checked
    check_graph(session, contract)         # the graph's names, dtypes and shapes agree

The graph of one tick has the inputs ``obs [B, obs_dim]``, ``reset [B]`` and
``state_in.<name> [B, *shape]`` per state tensor, and the outputs ``action``, ``value``,
the distribution parameters (``logits``, or ``action_mean`` and ``action_log_std``) and
``state_out.<name>``, in that order (:func:`io_names`).
"""

from __future__ import annotations

import json
import math
import re

#: The ``metadata_props`` key that holds the JSON contract.
CONTRACT_KEY = "dnc_policy.contract"
#: The version ``export.onnx`` writes. A runtime reads every ``MAJOR.x`` of its major.
CONTRACT_VERSION = "1.2"  # 1.1: debug_state; 1.2: state_bounds
SUPPORTED_MAJOR = int(CONTRACT_VERSION.split(".")[0])
OBS, RESET = "obs", "reset"
STATE_IN, STATE_OUT = "state_in.", "state_out."


class ContractError(ValueError):
    """The ONNX file has no contract, another major version, or one its graph breaks."""



ACTION_KINDS = ("discrete", "multi_discrete", "multi_binary", "box")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}


def _describe(value) -> str:
    """``value`` for a one-line message: its JSON text (cut short) and JSON type."""
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({_JSON_TYPES.get(type(value), type(value).__name__)})"


def _bad(field: str, value, expected: str) -> ContractError:
    return ContractError(f"contract field {field!r} = {_describe(value)}: expected {expected}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _need(contract: dict, field: str, where: str = ""):
    if field not in contract:
        raise ContractError(f"contract lacks {where + field!r}")
    return contract[field]


def _check_object(value, field: str) -> dict:
    if not isinstance(value, dict):
        raise _bad(field, value, "an object")
    return value


def _check_names(value, field: str) -> list:
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
        raise _bad(field, value, "an array of non-empty strings")
    if len(set(value)) != len(value):
        raise _bad(field, value, "names without repeats")
    return value


def _check_ints(value, field: str, low: int, nonempty: bool = True) -> list:
    if (not isinstance(value, list) or (nonempty and not value)
            or not all(_is_int(v) and v >= low for v in value)):
        raise _bad(field, value, f"{'a non-empty' if nonempty else 'an'} array of integers "
                                 f">= {low}")
    return value


def action_dim(action: dict) -> int:
    """Width of the action vector (1 for Discrete, whose action is a scalar)."""
    return {"discrete": 1, "multi_discrete": len(action.get("nvec", ())),
            "multi_binary": action.get("n", 0), "box": len(action.get("low", ()))}[action["kind"]]


def _check_action(action) -> None:
    _check_object(action, "action")
    kind = _need(action, "kind", "action.")
    if kind not in ACTION_KINDS:
        raise _bad("action.kind", kind, f"one of {', '.join(ACTION_KINDS)}")
    dtype = _need(action, "dtype", "action.")
    if dtype not in ("int64", "float32"):
        raise _bad("action.dtype", dtype, "'int64' or 'float32'")
    # The fields of the kind are required; the others, if present, must still be typed.
    if kind in ("discrete", "multi_binary"):
        n = _need(action, "n", "action.")
        if not _is_int(n) or n < 1:
            raise _bad("action.n", n, f"an integer >= 1 for a {kind} action")
    elif "n" in action and not _is_int(action["n"]):
        raise _bad("action.n", action["n"], "an integer")
    _check_ints(_need(action, "nvec", "action.") if kind == "multi_discrete"
                else action.get("nvec", []), "action.nvec", 1,
                nonempty=kind == "multi_discrete")
    for bound in ("low", "high"):
        values = _need(action, bound, "action.") if kind == "box" else action.get(bound, [])
        if (not isinstance(values, list) or (kind == "box" and not values)
                or not all(_is_number(v) and not math.isnan(v) for v in values)):
            raise _bad(f"action.{bound}", values, ("a non-empty" if kind == "box" else "an")
                       + " array of numbers (no NaN)")
    if kind == "box":
        low, high = action["low"], action["high"]
        if len(low) != len(high):
            raise _bad("action.high", high, f"{len(low)} numbers, as many as 'action.low'")
        if any(lo > hi for lo, hi in zip(low, high)):
            raise _bad("action.high", high, "bounds >= 'action.low', element by element")
    if "shape" in action:
        shape, dims = action["shape"], [] if kind == "discrete" else [action_dim(action)]
        if (not isinstance(shape, list) or not shape or not isinstance(shape[0], str)
                or shape[1:] != dims):
            raise _bad("action.shape", shape, f"[\"B\"{''.join(f', {d}' for d in dims)}] "
                                              f"for this {kind} action")


def check_contract(contract) -> None:
    """Raise ContractError (one line, naming the field) unless ``contract`` has every
    field this runtime and its users read, each of the right type (contract 1.x).
    Fields it does not know are allowed: a later minor version may add some."""
    if not isinstance(contract, dict):
        raise ContractError(f"the contract is {_JSON_TYPES.get(type(contract), 'a value')}, "
                            "expected an object")
    version = _need(contract, "contract_version")
    if not isinstance(version, str) or not re.fullmatch(r"\d+\.\d+", version):
        raise ContractError(f"contract_version {_describe(version)} is not of the form "
                            "MAJOR.MINOR")
    if int(version.split(".")[0]) != SUPPORTED_MAJOR:
        raise ContractError(f"contract version {version} is not supported: this runtime "
                            f"reads major version {SUPPORTED_MAJOR}")
    obs_dim = _need(contract, "obs_dim")
    if not _is_int(obs_dim) or obs_dim < 1:
        raise _bad("obs_dim", obs_dim, "an integer >= 1")
    _check_action(_need(contract, "action"))
    kind = contract["action"]["kind"]
    dist = _check_object(_need(contract, "distribution"), "distribution")
    if _need(dist, "kind", "distribution.") != kind:
        raise _bad("distribution.kind", dist["kind"], f"{kind!r}, the action's kind")
    if _need(dist, "outputs", "distribution.") != distribution_outputs(kind):
        raise _bad("distribution.outputs", dist["outputs"],
                   f"{distribution_outputs(kind)} for a {kind} action")
    state = _need(contract, "state")
    if not isinstance(state, list):
        raise _bad("state", state, "an array of {name, shape} objects")
    for i, s in enumerate(state):
        _check_object(s, f"state[{i}]")
        name = _need(s, "name", f"state[{i}].")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise _bad(f"state[{i}].name", name, "an identifier")
        _check_ints(_need(s, "shape", f"state[{i}]."), f"state[{i}].shape", 1, nonempty=False)
    _check_names([s["name"] for s in state], "state[].name")
    if "debug_state" in contract:  # 1.1: the state entries the node may publish for debugging
        debug = _check_names(contract["debug_state"], "debug_state")
        unknown = [n for n in debug if n not in {s["name"] for s in state}]
        if unknown:
            raise _bad("debug_state", debug, f"names from 'state' ({unknown} are not)")
    if "state_bounds" in contract:  # 1.2: the ranges the core's state always stays within
        _check_state_bounds(contract["state_bounds"], {s["name"]: s["shape"] for s in state})
    _check_names(_need(contract, "inputs"), "inputs")
    _check_names(_need(contract, "outputs"), "outputs")
    core = _check_object(_need(contract, "core"), "core")
    if not isinstance(_need(core, "kind", "core."), str):
        raise _bad("core.kind", core["kind"], "a string")
    _check_object(_need(core, "config", "core."), "core.config")
    env = _check_object(_need(contract, "env"), "env")
    if not isinstance(_need(env, "id", "env."), str) or not env["id"]:
        raise _bad("env.id", env["id"], "a Gymnasium env id")
    _check_object(_need(env, "kwargs", "env."), "env.kwargs")
    if "checkpoint" in contract:
        ck = _check_object(contract["checkpoint"], "checkpoint")
        if "sha256" in ck and not (ck["sha256"] is None or (isinstance(ck["sha256"], str)
                                   and re.fullmatch(r"[0-9a-f]{64}", ck["sha256"]))):
            raise _bad("checkpoint.sha256", ck["sha256"], "64 hex digits or null")
    for field in ("observation_space", "action_space", "obs_normalizer", "exporter"):
        if field in contract:
            _check_object(contract[field], field)


#: What a ``state_bounds`` entry's ``sums`` may say beyond its range: nothing, the last
#: axis sums to at most 1 (a weighting over memory slots), or a link matrix (square last
#: two axes, every row and column summing to at most 1, a zero diagonal).
BOUND_SUMS = ("none", "last_axis", "link")


def _check_state_bounds(bounds, shapes: dict) -> None:
    """``state_bounds``: ``{name: {low, high, sums, what[, low_tolerance]}}`` over names of
    ``state`` (``shapes``: name -> shape), each a range a reader can check a state by."""
    _check_object(bounds, "state_bounds")
    for name, b in bounds.items():
        field = f"state_bounds.{name}"
        if name not in shapes:
            raise _bad("state_bounds", sorted(bounds), f"names from 'state' ({name!r} is not)")
        _check_object(b, field)
        low, high = _need(b, "low", field + "."), _need(b, "high", field + ".")
        for key, v in (("low", low), ("high", high)):
            if not _is_number(v) or not math.isfinite(v):
                raise _bad(f"{field}.{key}", v, "a finite number")
        if low > high:
            raise _bad(f"{field}.high", high, f"a number >= low ({low})")
        sums = _need(b, "sums", field + ".")
        if sums not in BOUND_SUMS:
            raise _bad(f"{field}.sums", sums, f"one of {list(BOUND_SUMS)}")
        shape = shapes[name]
        if sums == "last_axis" and not shape:
            raise _bad(f"{field}.sums", sums, "'none' for a scalar state tensor")
        if sums == "link" and (len(shape) < 2 or shape[-1] != shape[-2]):
            raise _bad(f"{field}.sums", sums, f"'none' or 'last_axis' for the shape {shape} "
                                               "(a link matrix is square in its last two axes)")
        if not isinstance(_need(b, "what", field + "."), str):
            raise _bad(f"{field}.what", b["what"], "a string")
        tol = b.get("low_tolerance", 0.0)
        if not _is_number(tol) or not 0 <= tol < math.inf:
            raise _bad(f"{field}.low_tolerance", tol, "a finite number >= 0")


def read_contract(session) -> dict:
    """The contract dict of an ``onnxruntime.InferenceSession``, checked against the
    schema of :func:`check_contract` (raises ContractError)."""
    meta = session.get_modelmeta().custom_metadata_map
    if CONTRACT_KEY not in meta:
        raise ContractError(_NO_CONTRACT)
    return from_json(meta[CONTRACT_KEY])


def _dims(dims) -> str:
    return "[batch" + "".join(f", {d}" for d in dims) + "]"


def check_graph(session, contract: dict) -> None:
    """Raise ContractError naming the first input or output, or the contract field, that
    disagrees: the graph's inputs and outputs must be exactly those the contract names,
    in order, which are those its state and action kind imply, with the dtypes and
    shapes of ``obs_dim``, the state shapes and the action's size."""
    check_contract(contract)
    got_in = [i.name for i in session.get_inputs()]
    got_out = [o.name for o in session.get_outputs()]
    if got_in != contract["inputs"]:
        raise ContractError(f"graph inputs {got_in} disagree with the contract's "
                            f"{contract['inputs']}")
    if got_out != contract["outputs"]:
        raise ContractError(f"graph outputs {got_out} disagree with the contract's "
                            f"{contract['outputs']}")
    names = [s["name"] for s in contract["state"]]
    action, kind = contract["action"], contract["action"]["kind"]
    want_in, want_out = io_names(names, kind)
    if got_in != want_in:
        raise ContractError(f"contract field 'state' names {names}: the graph's inputs "
                            f"should then be {want_in}, they are {got_in}")
    heads = head_outputs(kind)
    if got_out[:len(heads)] != heads:
        raise ContractError(f"contract field 'action.kind' = {kind!r} needs the outputs "
                            f"{heads} first, the graph's outputs are {got_out}")
    if got_out != want_out:
        raise ContractError(f"contract field 'state' names {names}: the graph's outputs "
                            f"after {heads} should be {STATE_OUT}<name> for each, they are "
                            f"{got_out[len(heads):]}")
    float_t, int_t = "tensor(float)", "tensor(int64)"
    width = {"discrete": action.get("n"), "multi_binary": action.get("n"),
             "multi_discrete": sum(action.get("nvec", ())), "box": len(action.get("low", ()))}
    size_field = {"discrete": "action.n", "multi_binary": "action.n",
                  "multi_discrete": "action.nvec", "box": "action.low"}[kind]
    # name: (dtype, dims without the batch axis, the contract field they come from)
    want = {OBS: (float_t, [contract["obs_dim"]], "obs_dim"), RESET: (float_t, [], "reset"),
            "action": (float_t if action["dtype"] == "float32" else int_t,
                       [] if kind == "discrete" else [action_dim(action)], size_field),
            "value": (float_t, [], "value"), "logits": (float_t, [width[kind]], size_field),
            "action_mean": (float_t, [width[kind]], size_field),
            "action_log_std": (float_t, [width[kind]], size_field)}
    for i, s in enumerate(contract["state"]):
        for io in ("in", "out"):
            want[(STATE_IN if io == "in" else STATE_OUT) + s["name"]] = (
                float_t, list(s["shape"]), f"state[{i}].shape")
    for node in list(session.get_inputs()) + list(session.get_outputs()):
        dtype, dims, field = want[node.name]
        if node.name == "action" and node.type != dtype:
            raise ContractError(f"graph output 'action' is {node.type}, contract says "
                                f"{action['dtype']}")
        if node.type != dtype:
            raise ContractError(f"graph {node.name!r} is {node.type}, expected {dtype}")
        shape = list(node.shape)
        if not shape or shape[1:] != dims:
            raise ContractError(f"graph {node.name!r} has shape {node.shape}, the contract "
                                f"says {_dims(dims)} (field {field!r})")
    if action["dtype"] != action_dtype(kind):
        raise _bad("action.dtype", action["dtype"], f"{action_dtype(kind)} for a {kind} action")


def distribution_outputs(kind: str) -> list[str]:
    """The distribution-parameter outputs for an action kind."""
    return ["action_mean", "action_log_std"] if kind == "box" else ["logits"]


def head_outputs(kind: str) -> list[str]:
    """The graph outputs before the state, for an action kind."""
    return ["action", "value"] + distribution_outputs(kind)


def io_names(state_names, kind: str) -> tuple[list[str], list[str]]:
    """The graph's input and output names, in order, for state tensors ``state_names``
    and an action ``kind``."""
    names = list(state_names)
    return ([OBS, RESET] + [STATE_IN + n for n in names],
            head_outputs(kind) + [STATE_OUT + n for n in names])


def action_dtype(kind: str) -> str:
    """The dtype of the ``action`` output: float32 for Box, int64 for the others."""
    return "float32" if kind == "box" else "int64"


def action_shape(kind: str, dim: int) -> list:
    """The ``action`` output's shape: ``["B"]`` for Discrete, ``["B", dim]`` otherwise."""
    return ["B"] if kind == "discrete" else ["B", dim]


def to_json(contract: dict) -> str:
    """The contract as the JSON text stored in the model, after :func:`check_contract`."""
    check_contract(contract)
    return json.dumps(contract, allow_nan=True)


def from_json(text: str) -> dict:
    """The contract from its JSON text, checked (raises ContractError, one line)."""
    try:
        contract = json.loads(text)
    except json.JSONDecodeError as e:
        raise ContractError(f"metadata_props[{CONTRACT_KEY!r}] is not valid JSON: {e}") from None
    except RecursionError:
        raise ContractError(f"metadata_props[{CONTRACT_KEY!r}] is JSON nested too deeply to "
                            "read (beyond Python's recursion limit): not a contract that "
                            "export.onnx writes") from None
    check_contract(contract)
    return contract


def write_contract(model, contract: dict) -> None:
    """Store ``contract`` (checked) in an ``onnx.ModelProto``'s ``metadata_props``,
    replacing an entry under :data:`CONTRACT_KEY` if there is one."""
    text = to_json(contract)
    for entry in model.metadata_props:
        if entry.key == CONTRACT_KEY:
            entry.value = text
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = CONTRACT_KEY, text


def contract_of_model(model) -> dict:
    """The contract stored in an ``onnx.ModelProto``, checked."""
    meta = {entry.key: entry.value for entry in model.metadata_props}
    if CONTRACT_KEY not in meta:
        raise ContractError(_NO_CONTRACT)
    return from_json(meta[CONTRACT_KEY])


_NO_CONTRACT = (f"the model has no metadata_props[{CONTRACT_KEY!r}]: it was not written by "
                "`python -m export.onnx` (or the metadata was stripped)")
