"""Issue 14: the runtime refuses bad states, resets and contracts whole, and changes
nothing when it does (``dnc_policy.runtime``, ``dnc_policy.controller``).

- a state (``restore`` or ``load_state``) is checked whole, names, shapes, dtypes and
  finite values, before anything is written: a refusal leaves the state, the pending
  reset and the undo bit-identical;
- a NaN or Inf state is refused (the node then keeps its memory and logs why);
- ``step(reset=...)`` takes 0/1 only; a complex observation is an error;
- the contract is checked against a schema and against the graph, one line per refusal;
- a fuzz of state files (truncated, bit-flipped, wrong dtypes and shapes, NaN/Inf,
  extra and missing entries, pickled objects): every one is refused with one line, or
  (a flipped bit that nothing reads) loads exactly the saved state.

Real models, trained and exported by the project's own code (shared with
``test_export.py``), run by onnxruntime; no mocks.
"""

from __future__ import annotations

import io
import json
import pathlib
import warnings

import numpy as np
import onnx
import pytest
from dnc_policy.controller import PolicyController
from dnc_policy.runtime import (
    ContractError,
    NonFiniteOutput,
    PolicyRuntime,
)
from dnc_policy.statefile import StateError
from dnc_policy.settings import parse_policy_settings
from exported import env_observations
from test_runtime import with_contract




pytestmark = pytest.mark.usefixtures("one_thread")

# -- helpers -------------------------------------------------------------------------------
def logging_controller(settings: dict) -> tuple[PolicyController, list]:
    """A controller built from ``settings`` and the ``(level, message)`` lines it logs."""
    logs = []
    c = PolicyController(parse_policy_settings(settings), 0.0,
                         lambda level, msg: logs.append((level, msg)))
    return c, logs


def stream(models, name, n, batch, seed=0):
    ck = models(name).contract()
    return env_observations(ck["env"]["id"], ck["env"]["kwargs"], n * batch, seed).reshape(
        n, batch, -1)


def full_state(rt) -> tuple:
    """Everything a refusal must leave as it was, as bytes: each state tensor, which
    buffer set is current, the pending reset, whether undo_step is allowed."""
    return (tuple((k, v.dtype.str, v.shape, v.tobytes()) for k, v in rt.snapshot().items()),
            rt._current, rt._pending_reset.tobytes(), rt._can_undo)


def assert_one_line(e: BaseException, *words):
    msg = str(e)
    assert msg and "\n" not in msg, repr(msg)
    for w in words:
        assert w in msg, (w, msg)


def stepped(models, name="dnc", batch=2, ticks=5, seed=0):
    """A runtime and its twin, both after the same ``ticks``, and the rest of the stream."""
    obs = stream(models, name, ticks + 6, batch, seed)
    rt, twin = (PolicyRuntime(models(name).onnx, batch=batch) for _ in range(2))
    for x in obs[:ticks]:
        rt.step(x)
        twin.step(x)
    return rt, twin, obs[ticks:]


def assert_twins(rt, twin, obs):
    """The following ticks of ``rt`` equal ``twin``'s bit for bit (and undo still works)."""
    rt.undo_step()
    twin.undo_step()
    assert full_state(rt) == full_state(twin)
    for x in obs:
        np.testing.assert_array_equal(rt.step(x), twin.step(x))
        for k, v in rt.outputs.items():
            np.testing.assert_array_equal(v, twin.outputs[k], err_msg=k)
        assert full_state(rt) == full_state(twin)


def npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # object arrays are pickled (np.savez allows it)
    return buf.getvalue()


def identity(rt) -> np.ndarray:
    return np.frombuffer(json.dumps(rt.state_identity()).encode(), np.uint8)


def other_state(rt, seed=1) -> dict:
    """A valid state for ``rt`` that differs from its current one in every tensor, and
    is one a DNC can be in (its contract's state_bounds): usage and h stay in range, every
    weighting over the slots (and the link matrix, diagonal 0) sums to at most 1."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in rt.snapshot().items():
        u = rng.uniform(0.1, 0.5, v.shape)
        if k in ("h", "usage"):
            new = 0.5 * v + u
        elif k in ("write_weights", "read_weights", "precedence", "link"):
            new = 0.5 * v + u / v.shape[-1]
            if k == "link":
                new *= 1 - np.eye(v.shape[-1])
        else:
            new = v + u
        out[k] = new.astype(np.float32)
    return out


# -- 4. a refused state is not half-applied ------------------------------------------------
def test_load_state_with_a_string_tensor_changes_nothing(models, tmp_path):
    """The file has the right identity and valid h and c (earlier in the state order
    than memory), but memory is a string array: nothing may be written."""
    rt, twin, obs = stepped(models)
    before = full_state(rt)
    good = other_state(rt)
    bad = {**good, "memory": np.full(good["memory"].shape, "0.5")}
    path = tmp_path / "s.npz"
    path.write_bytes(npz_bytes({**bad, "__identity__": identity(rt)}))
    with pytest.raises(StateError) as e:
        rt.load_state(path)
    assert_one_line(e.value, "'memory'", "dtype <U3", str(path))
    assert full_state(rt) == before
    assert_twins(rt, twin, obs)


@pytest.mark.parametrize("link, words", [
    (lambda s: np.full(s, "x"), ["dtype <U1"]),
    (lambda s: np.zeros(s, np.complex64), ["dtype complex64"]),
    (lambda s: np.zeros(s, object), ["dtype object"]),
    (lambda s: np.full(s, np.nan, np.float32), ["NaN or Inf"]),
    (lambda s: np.full(s, 1e39), ["NaN or Inf", "float32"]),  # finite in float64 only
    (lambda s: np.zeros(s[:-1], np.float32), ["shape"]),
    (lambda s: [[1.0, 2.0], [3.0]], ["not an array"]),  # ragged
], ids=["str", "complex", "object", "nan", "overflow", "shape", "ragged"])
def test_restore_with_a_bad_link_changes_nothing(models, link, words):
    """link comes after h, c, memory and usage: those must not be written first."""
    rt, twin, obs = stepped(models)
    before = full_state(rt)
    good = other_state(rt)
    with pytest.raises(StateError) as e:
        rt.restore({**good, "link": link(good["link"].shape)})
    assert_one_line(e.value, "'link'", *words)
    assert full_state(rt) == before
    assert_twins(rt, twin, obs)


def test_a_refusal_keeps_a_pending_reset(models, tmp_path):
    rt, twin, obs = stepped(models)
    rt.reset(rows=[1])
    twin.reset(rows=[1])
    before = full_state(rt)
    with pytest.raises(StateError):
        rt.restore({**other_state(rt), "h": np.full((2, 16), np.inf, np.float32)})
    assert full_state(rt) == before
    for x in obs:
        np.testing.assert_array_equal(rt.step(x), twin.step(x))
        assert full_state(rt) == full_state(twin)


def test_accepted_dtypes_are_converted_to_float32(models, tmp_path):
    """bool, ints, float16 and float64 within float32's range are real numbers: loaded."""
    rt, _, _ = stepped(models)
    good = other_state(rt)
    one_hot = np.zeros_like(good["precedence"], np.int32)
    one_hot[:, 2] = 1  # a precedence weighting sums to at most 1
    mixed = {**good, "h": good["h"].astype(np.float64), "c": good["c"].astype(np.float16),
             "usage": (good["usage"] > 0.3), "precedence": one_hot}
    path = tmp_path / "s.npz"
    path.write_bytes(npz_bytes({**mixed, "__identity__": identity(rt)}))
    rt.load_state(path)
    for k, v in rt.snapshot().items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, mixed[k].astype(np.float32), err_msg=k)


# -- 5. NaN and Inf states are refused -----------------------------------------------------
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["h", "memory", "read_vectors"])
def test_a_nan_or_inf_state_is_refused(models, tmp_path, name, value):
    rt, twin, obs = stepped(models)
    before = full_state(rt)
    bad = other_state(rt)
    bad[name].flat[3] = value
    with pytest.raises(StateError) as e:
        rt.restore(bad)
    assert_one_line(e.value, f"tensor {name!r}", "NaN or Inf")
    assert full_state(rt) == before
    path = tmp_path / "s.npz"
    path.write_bytes(npz_bytes({**bad, "__identity__": identity(rt)}))
    with pytest.raises(StateError) as e:
        rt.load_state(path)
    assert_one_line(e.value, f"tensor {name!r}", "NaN or Inf", str(path))
    assert full_state(rt) == before
    assert_twins(rt, twin, obs)


def test_the_controller_keeps_its_memory_when_the_snapshot_has_nan(models, tmp_path):
    """At start-up a state file with a NaN is refused: the node logs why in one line,
    sets the file aside, keeps its (empty) memory and acts (finite actions)."""
    model = models("dnc").onnx
    rt = PolicyRuntime(model)
    for x in stream(models, "dnc", 3, 1):
        rt.step(x)
    bad = rt.snapshot()
    bad["memory"][0, 2, 1] = np.nan
    path = tmp_path / "mem.npz"
    path.write_bytes(npz_bytes({**bad, "__identity__": identity(rt)}))
    c, logs = logging_controller({"model_path": str(model), "snapshot.path": str(path)})
    try:
        assert c.restored_from == ""
        errors = [m for level, m in logs if level == "error"]
        assert len(errors) == 1 and "\n" not in errors[0]
        assert "'memory'" in errors[0] and "NaN or Inf" in errors[0]
        assert (tmp_path / "mem.npz.rejected").exists() and not path.exists()
        assert all((v == 0).all() for v in c.runtime.snapshot().values())
        c.activate(0.0)
        for x in stream(models, "dnc", 4, 1):
            tick = c.on_observation(x[0], 0.0)
            assert not tick.safe and np.isfinite(tick.action).all()
        assert c.counters.nonfinite == 0
    finally:
        c.close()


# -- 5b. a DNC state outside the ranges the DNC can reach is refused ----------------------
def _zero_link_with(index, value=0.3):
    """An edit: the link matrix all zero but ``link[index] = value`` (diagonal kept 0)."""
    def edit(s):
        s["link"][:] = 0.0
        s["link"][index] = value
        n = s["link"].shape[-1]
        s["link"][:, np.arange(n), np.arange(n)] = 0.0
    return edit


def _at(name, index, value):
    def edit(s):
        s[name][index] = value
    return edit


# name: (edit of a valid state, words of the one-line refusal). The test DNC has 8 slots,
# one read head, batch 2.
OUT_OF_RANGE = {
    "usage_negative": (_at("usage", ..., -0.5), ["'usage'", "16 value(s) outside [0, 1]",
                                                 "first -0.5 at index (0, 0)"]),
    "usage_above_1": (_at("usage", (1, 6), 1.5), ["'usage'", "outside [0, 1]", "1.5",
                                                  "index (1, 6)"]),
    # the allocation's log(1e-6 + (1 - 1e-6) u) is NaN from u < -1e-6
    "usage_slightly_negative": (_at("usage", (0, 3), -2e-6), ["'usage'", "-2e-06"]),
    "write_weights_negative": (_at("write_weights", ..., -0.5), ["'write_weights'",
                                                                 "outside [0, 1]"]),
    "write_weights_sum": (_at("write_weights", ..., 0.2),
                          ["'write_weights'", "sums to 1.6 at index (0, :)", "at most 1"]),
    "read_weights_sum": (_at("read_weights", (1, 0), 0.3),
                         ["'read_weights'", "sums to 2.4 at index (1, 0, :)"]),
    "read_weights_above_1": (_at("read_weights", (0, 0, 2), 1.5), ["'read_weights'",
                                                                   "outside [0, 1]"]),
    "precedence_negative": (_at("precedence", ..., -0.5), ["'precedence'", "outside [0, 1]"]),
    "precedence_sum": (_at("precedence", ..., 0.25), ["'precedence'", "sums to 2"]),
    "link_negative": (_at("link", (0, 1, 2), -0.5), ["'link'", "outside [0, 1]"]),
    "link_diagonal": (_at("link", (1, 4, 4), 0.5), ["'link'", "non-zero diagonal",
                                                    "0.5 at index (1, 4, 4)"]),
    "link_row_sum": (_zero_link_with((0, 2)), ["'link'", "a row summing to 2.1",
                                               "(0, 2, :)"]),
    "link_column_sum": (_zero_link_with((1, slice(None), 5)),
                        ["'link'", "a column summing to 2.1", "(1, :, 5)"]),
    "h_above_1": (_at("h", (0, 0), 1.5), ["'h'", "outside [-1, 1]"]),
}


@pytest.mark.parametrize("case", list(OUT_OF_RANGE))
def test_a_dnc_state_outside_its_ranges_is_refused(models, tmp_path, case):
    """Finite but impossible for a DNC (DESIGN.md §2): e.g. a usage of -0.5 made every
    output NaN from the next tick on. Refused by restore and load_state, in one line
    naming the tensor, changing nothing."""
    edit, words = OUT_OF_RANGE[case]
    rt, twin, obs = stepped(models)
    before = full_state(rt)
    bad = other_state(rt)
    rt.check_state(bad)  # valid before the edit
    edit(bad)
    with pytest.raises(StateError) as e:
        rt.restore(bad)
    assert_one_line(e.value, "snapshot tensor", *words)
    assert full_state(rt) == before
    path = tmp_path / "s.npz"
    path.write_bytes(npz_bytes({**bad, "__identity__": identity(rt)}))
    with pytest.raises(StateError) as e:
        rt.load_state(path)
    assert_one_line(e.value, str(path), *words)
    assert full_state(rt) == before
    assert_twins(rt, twin, obs)


def test_every_state_the_dnc_reaches_is_within_its_ranges(models):
    """No false refusal: 600 ticks at batch 8 (env observations, then large random ones,
    random resets): every state passes check_state, and the memory was really used."""
    rt = PolicyRuntime(models("dnc").onnx, batch=8)
    rng = np.random.default_rng(0)
    env_obs = stream(models, "dnc", 300, 8)
    most = {k: 0.0 for k in ("usage", "write_weights", "link", "precedence")}
    for t in range(600):
        x = env_obs[t] if t < 300 else rng.normal(0, 30, (8, rt.obs_dim)).astype(np.float32)
        rt.step(x, reset=(rng.random(8) < 0.02).astype(np.float32))
        snap = rt.snapshot()
        checked = rt.check_state(snap)
        for k, v in snap.items():
            np.testing.assert_array_equal(checked[k], v)
        most = {k: max(m, float(snap[k].sum(-1).max())) for k, m in most.items()}
    assert most["usage"] > 2 and most["write_weights"] > 0.5, most
    assert most["link"] > 0.3 and most["precedence"] > 0.99, most  # (1 + 1.2e-7 seen)


def test_the_controller_refuses_an_out_of_range_snapshot_and_saves_a_valid_one(models,
                                                                               tmp_path):
    """The reviewer's node run: a snapshot with usage -0.5 was restored, then every tick
    was the safe action and close() wrote it back. Now: refused at start-up (one line,
    set aside), empty memory, the policy acts, and close() saves a state that loads."""
    model = models("dnc").onnx
    rt = PolicyRuntime(model)
    for x in stream(models, "dnc", 3, 1):
        rt.step(x)
    bad = rt.snapshot()
    bad["usage"][:] = -0.5
    path = tmp_path / "mem.npz"
    rt.save_state(path, bad)
    c, logs = logging_controller({"model_path": str(model), "snapshot.path": str(path)})
    try:
        assert c.restored_from == ""
        errors = [m for level, m in logs if level == "error"]
        assert len(errors) == 1 and "\n" not in errors[0]
        assert "'usage'" in errors[0] and "outside [0, 1]" in errors[0]
        assert "memory restored" not in " ".join(m for _, m in logs)
        assert (tmp_path / "mem.npz.rejected").exists() and not path.exists()
        assert all((v == 0).all() for v in c.runtime.snapshot().values())
        c.activate(0.0)
        for i, x in enumerate(stream(models, "dnc", 20, 1)):
            tick = c.on_observation(x[0], 0.01 * i)
            assert not tick.safe and np.isfinite(tick.action).all()
        assert c.counters.nonfinite == 0 and c.counters.ticks == 20
    finally:
        c.close()
    fresh = PolicyRuntime(model)
    fresh.load_state(path)  # the saved state is a valid one
    for k, v in fresh.snapshot().items():
        np.testing.assert_array_equal(v, c.runtime.snapshot()[k], err_msg=k)


def test_the_ranges_come_from_the_contract_for_every_core(models, tmp_path):
    """Not a DNC special case: a GRU's contract bounds its h to [-1, 1] (a tanh mix), and
    a restored h of 1.5 is refused. A model exported before contract 1.2 declares no
    bounds: the same state is accepted on shape and finiteness alone, and the node says
    so in a warning when it loads a snapshot."""
    model = models("gru").onnx
    rt = PolicyRuntime(model)
    assert rt.state_bounds == {"h": {"low": -1.0, "high": 1.0, "sums": "none",
                                     "what": "the hidden state h, a tanh"}}
    bad = {"h": np.full((1, 16), 0.2, np.float32)}
    bad["h"][0, 3] = 1.5
    with pytest.raises(StateError) as e:
        rt.restore(bad)
    assert_one_line(e.value, "'h'", "1 value(s) outside [-1, 1]", "1.5", "index (0, 3)")

    def as_1_1(contract):
        del contract["state_bounds"]
        return {**contract, "contract_version": "1.1"}

    old = with_contract(model, tmp_path / "old.onnx", as_1_1)
    legacy = PolicyRuntime(old)
    assert legacy.state_bounds == {}
    legacy.restore(bad)
    np.testing.assert_array_equal(legacy.snapshot()["h"], bad["h"])
    path = tmp_path / "mem.npz"
    legacy.save_state(path)
    warnings, errors = {}, {}
    for onnx_file in (old, model):
        c, logs = logging_controller({"model_path": str(onnx_file),
                                      "snapshot.path": str(path)})
        if onnx_file == old:  # restored: the memory is the state with h = 1.5
            np.testing.assert_array_equal(c.runtime.snapshot()["h"], bad["h"])
        c.close()
        warnings[onnx_file] = [m for level, m in logs if level == "warn"]
        errors[onnx_file] = [m for level, m in logs if level == "error"]
    assert errors[old] == [] and len(errors[model]) == 1
    assert_one_line(errors[model][0], "'h'", "outside [-1, 1]")
    assert warnings[model] == []  # and the 1.2 model refused the snapshot of h = 1.5:
    assert (tmp_path / "mem.npz.rejected").exists()
    assert len(warnings[old]) == 1
    assert_one_line(warnings[old][0], "contract (1.1) declares no state_bounds",
                    "shape and finite values only")


# -- 5c. a tick with NaN or Inf outputs raises and is undone -------------------------------
def with_nan_output(src, dst, output):
    """Copy of the ONNX file ``src`` whose graph output ``output`` is multiplied by NaN
    (one Mul node appended; onnxruntime runs it, only that output is NaN)."""
    from onnx import helper, numpy_helper

    m = onnx.load(str(src))
    raw = output + ".raw"
    for node in m.graph.node:
        node.output[:] = [raw if o == output else o for o in node.output]
        node.input[:] = [raw if i == output else i for i in node.input]
    m.graph.initializer.append(numpy_helper.from_array(np.array(np.nan, np.float32),
                                                       "test.nan"))
    m.graph.node.append(helper.make_node("Mul", [raw, "test.nan"], [output]))
    onnx.save(m, str(dst))
    return dst


def test_a_state_that_got_in_past_the_checks_raises_instead_of_acting_on_nan(models):
    """The reviewer's runtime run: with usage -0.5, step() returned action [0] computed
    from NaN at every tick. Now each tick raises NonFiniteOutput (a ValueError, one line
    naming the NaN outputs) and leaves the state, pending reset and all, as it was."""
    rt, _, obs = stepped(models, batch=1)
    bad = rt.snapshot()
    bad["usage"][:] = -0.5
    with pytest.raises(StateError):
        rt.restore(bad)
    rt._write_state(bad)  # past the checks (as the old runtime let it in)
    before = full_state(rt)
    for x in obs:
        with pytest.raises(NonFiniteOutput) as e:
            rt.step(x)
        assert isinstance(e.value, ValueError)
        assert_one_line(e.value, "NaN or Inf", "value: 1", "logits: ", "state_out.memory: ",
                        "step undone")
        assert full_state(rt) == before
        with pytest.raises(RuntimeError):
            rt.undo_step()  # nothing to undo: the refused tick was never applied


def test_a_tick_whose_new_state_is_nan_is_refused_even_with_finite_heads(models, tmp_path):
    """On the CPU the new state is checked too: a model whose precedence output is NaN
    (its heads are finite, as a fresh model's) is refused at every tick, its pending
    reset kept; the controller acts safely, counts it and logs it once."""
    src = models("dnc").onnx
    path = with_nan_output(src, tmp_path / "nan_precedence.onnx", "state_out.precedence")
    rt, ref = PolicyRuntime(path, batch=2), PolicyRuntime(src, batch=2)
    before = full_state(rt)
    x = stream(models, "dnc", 1, 2)[0]
    ref.step(x)
    for reset in (False, True, [1, 0]):
        with pytest.raises(NonFiniteOutput) as e:
            rt.step(x, reset=reset)
        assert_one_line(e.value, "values (state_out.precedence: 16)", "step undone")
        for k, v in rt.outputs.items():  # the refused tick's heads: finite, the model's
            np.testing.assert_array_equal(v, ref.outputs[k], err_msg=k)
        assert full_state(rt) == before  # still the initial state, the reset pending

    c, logs = logging_controller({"model_path": str(path)})
    c.activate(0.0)
    ticks = [c.on_observation(o[0], 0.01 * i)
             for i, o in enumerate(stream(models, "dnc", 6, 1))]
    assert all(t.safe and "non-finite" in t.reason for t in ticks)
    assert c.counters.nonfinite == 6 and c.counters.ticks == 0
    warnings_ = [m for level, m in logs if level == "warn"]
    assert len(warnings_) == 1 and "state_out.precedence" in warnings_[0]
    assert "state_out.precedence" in c.status(0.0)["last_nonfinite_output"]
    assert all((v == 0).all() for v in c.runtime.snapshot().values())
    c.close()


# -- 8. reset takes 0/1 only; complex observations are errors ------------------------------
def assert_same_tick(a, b):
    for k, v in a.snapshot().items():
        np.testing.assert_array_equal(v, b.snapshot()[k], err_msg=k)
    for k, v in a.outputs.items():
        np.testing.assert_array_equal(v, b.outputs[k], err_msg=k)


@pytest.mark.parametrize("batch", [1, 3])
def test_reset_accepts_only_0_or_1(models, batch):
    model = models("dnc").onnx
    rt, twin, obs = stepped(models, batch=batch, ticks=3)
    x = obs[0]
    # 1 in every row: the tick equals a fresh runtime's first tick (an episode start).
    for reset in [True, 1, 1.0, np.float32(1), np.int64(1), np.bool_(True), np.ones(batch),
                  [1] * batch, np.ones(batch, bool)]:
        fresh = PolicyRuntime(model, batch=batch)
        fresh.step(x)
        rt.step(x, reset=reset)
        assert_same_tick(rt, fresh)
    # 0: a plain tick (the twin steps without a reset argument).
    twin.restore(rt.snapshot())
    for reset in [False, 0, 0.0, np.float64(0), np.uint8(0), np.zeros(batch, np.int32),
                  np.zeros(batch, bool), [0.0] * batch, np.array(0)]:
        rt.step(x, reset=reset)
        twin.step(x)
        assert_same_tick(rt, twin)
    if batch == 3:  # some rows: as reset(rows) before the tick
        for reset in [np.array([True, False, True]), [1, 0, 1], np.array([1.0, 0, 1.0])]:
            twin.reset(rows=[0, 2])
            twin.step(x)
            rt.step(x, reset=reset)
            assert_same_tick(rt, twin)
    bad = [None, -1, 2, 0.3, np.nan, np.inf, "1", b"0", [0.5] * batch, np.full(batch, -1.0),
           np.zeros(batch + 1), np.zeros((batch, 1)), 1j, np.array([object()] * batch),
           {"reset": 1}, [None] * batch]
    for reset in bad:
        before = full_state(rt)
        with pytest.raises(ValueError) as e:
            rt.step(x, reset=reset)
        assert_one_line(e.value, "reset", "expected 0 or 1")
        assert full_state(rt) == before, repr(reset)
    rt.step(x)  # the refused ticks changed nothing
    twin.step(x)
    assert_same_tick(rt, twin)


def test_a_complex_observation_is_an_error_not_a_warning(models):
    rt, twin, obs = stepped(models, batch=1)
    model = models("dnc").onnx
    c = PolicyController(parse_policy_settings({"model_path": str(model)}), 0.0)
    c.activate(0.0)
    before = full_state(rt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ComplexWarning would fail here
        for x in (obs[0].astype(np.complex64), obs[0][0].astype(np.complex128) + 0j,
                  np.array(["0.5"] * obs.shape[-1]), np.array([None] * obs.shape[-1])):
            with pytest.raises(ValueError) as e:
                rt.step(x)
            assert_one_line(e.value, "observation", "dtype")
            assert full_state(rt) == before
            with pytest.raises(ValueError):
                c.validate(x)
            tick = c.on_observation(x, 0.0)
            assert tick.safe and "dtype" in tick.reason
    assert c.counters.rejected == 4 and c.counters.ticks == 0
    c.close()
    assert_twins(rt, twin, obs)


# -- 7. the contract: schema and graph -----------------------------------------------------
def _short_state(c):
    c["state"] = c["state"][:-1]  # inputs and outputs still name every state tensor
    return c


def _set(path, value):
    """An edit that sets ``c[path[0]][path[1]]... = value``."""
    def edit(c):
        node = c
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        return c
    return edit


def _drop(path):
    def edit(c):
        node = c
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
        return c
    return edit


def _as_box(c):  # a discrete model whose contract claims a Box action (schema-valid)
    c["action"] = {**c["action"], "kind": "box", "dtype": "float32", "low": [-1.0],
                   "high": [1.0], "shape": ["B", 1]}
    c["distribution"] = {"kind": "box", "outputs": ["action_mean", "action_log_std"]}
    return c


def _as_multi_binary(c):  # same outputs and dtype; only the action's rank differs
    n = c["action"]["n"]
    c["action"] = {**c["action"], "kind": "multi_binary", "shape": ["B", n]}
    c["distribution"]["kind"] = "multi_binary"
    return c


def _as_discrete(c):  # a Box model whose contract claims a Discrete action
    c["action"] = {**c["action"], "kind": "discrete", "n": 2, "dtype": "int64",
                   "shape": ["B"]}
    c["distribution"] = {"kind": "discrete", "outputs": ["logits"]}
    return c


def _narrow_box(c):
    c["action"] = {**c["action"], "low": c["action"]["low"][:1],
                   "high": c["action"]["high"][:1], "shape": ["B", 1]}
    return c


CONTRACT_CASES = [
    # name, model, edit, words in the one-line message
    ("short_state", "dnc", _short_state, ["'state'", "state_in.read_vectors"]),
    ("json_list", "dnc", lambda c: "[1, 2]", ["the contract is an array, expected an object"]),
    ("json_number", "dnc", lambda c: "3", ["the contract is an integer"]),
    ("json_nested_100k", "dnc", lambda c: "[" * 100_000 + "]" * 100_000,
     ["nested too deeply"]),  # was a RecursionError
    ("field_nested_100k", "dnc",
     lambda c: json.dumps(c)[:-1] + ', "later": ' + "[" * 100_000 + "]" * 100_000 + "}",
     ["nested too deeply"]),
    ("field_nested_500", "dnc", _set(["obs_dim"], json.loads("[" * 500 + "]" * 500)),
     ["'obs_dim'", "[[[[", "an integer >= 1"]),
    ("state_str", "dnc", _set(["state"], "abc"), ["'state'", "\"abc\" (a string)"]),
    ("state_entry", "dnc", _set(["state", 0], ["h", [16]]), ["'state[0]'", "an object"]),
    ("state_shape_str", "dnc", _set(["state", 2, "shape"], "8,8"), ["'state[2].shape'"]),
    ("state_shape_neg", "dnc", _set(["state", 3, "shape"], [-8]), ["'state[3].shape'"]),
    ("state_name", "dnc", _set(["state", 1, "name"], 7), ["'state[1].name'"]),
    ("state_dup", "dnc", _set(["state", 1, "name"], "h"), ["'state[].name'", "repeats"]),
    ("state_no_shape", "dnc", _drop(["state", 4, "shape"]), ["lacks 'state[4].shape'"]),
    ("obs_dim_str", "dnc", _set(["obs_dim"], "4"), ["'obs_dim'", "\"4\" (a string)",
                                                    "an integer >= 1"]),
    ("obs_dim_bool", "dnc", _set(["obs_dim"], True), ["'obs_dim'", "(a boolean)"]),
    ("obs_dim_zero", "dnc", _set(["obs_dim"], 0), ["'obs_dim'"]),
    ("version_number", "dnc", _set(["contract_version"], 1.0), ["contract_version",
                                                                "MAJOR.MINOR"]),
    ("action_str", "dnc", _set(["action"], "discrete"), ["'action'", "an object"]),
    ("kind_unknown", "dnc", _set(["action", "kind"], "boxx"), ["'action.kind'",
                                                               "one of discrete"]),
    ("kind_box_no_bounds", "dnc", _set(["action", "kind"], "box"), ["'action.low'",
                                                                    "a non-empty array"]),
    ("kind_box", "dnc", _as_box, ["'action.kind'", "'box'", "action_mean"]),
    ("kind_multi_binary", "dnc", _as_multi_binary, ["graph 'action' has shape",
                                                    "'action.n'"]),
    ("n_str", "dnc", _set(["action", "n"], "3"), ["'action.n'"]),
    ("n_wrong", "dnc", lambda c: _set(["action", "n"], c["action"]["n"] + 1)(c),
     ["graph 'logits' has shape", "'action.n'"]),
    ("dtype_unknown", "dnc", _set(["action", "dtype"], "int8"), ["'action.dtype'"]),
    ("action_shape", "dnc", _set(["action", "shape"], ["B", 1]), ["'action.shape'"]),
    ("dist_kind", "dnc", _set(["distribution", "kind"], "box"), ["'distribution.kind'"]),
    ("dist_outputs", "dnc", _set(["distribution", "outputs"], ["action_mean"]),
     ["'distribution.outputs'"]),
    ("no_distribution", "dnc", _drop(["distribution"]), ["contract lacks 'distribution'"]),
    ("inputs_str", "dnc", _set(["inputs"], "obs"), ["'inputs'"]),
    ("outputs_extra", "dnc", lambda c: {**c, "outputs": c["outputs"] + ["extra"]},
     ["graph outputs", "disagree"]),
    ("env_id", "dnc", _set(["env", "id"], 5), ["'env.id'"]),
    ("no_env", "dnc", _drop(["env"]), ["contract lacks 'env'"]),
    ("core_config", "dnc", _set(["core", "config"], []), ["'core.config'"]),
    ("sha", "dnc", _set(["checkpoint", "sha256"], 12), ["'checkpoint.sha256'"]),
    ("box_as_discrete", "nav", _as_discrete, ["'action.kind'", "'discrete'", "logits"]),
    ("box_narrow", "nav", _narrow_box, ["graph 'action' has shape", "'action.low'"]),
    ("box_low_gt_high", "nav", lambda c: _set(["action", "low"],
                                              [h + 1 for h in c["action"]["high"]])(c),
     ["'action.high'", "bounds >="]),
    ("box_nan", "nav", _set(["action", "low"], [float("nan"), 0.0]), ["'action.low'"]),
    ("box_dtype", "nav", _set(["action", "dtype"], "int64"),
     ["'action' is tensor(float), contract says int64"]),
]


@pytest.mark.parametrize("name, model, edit, words", CONTRACT_CASES,
                         ids=[c[0] for c in CONTRACT_CASES])
def test_a_bad_contract_is_refused_in_one_line_naming_the_field(models, tmp_path, name,
                                                                model, edit, words):
    path = with_contract(models(model).onnx, tmp_path / "edited.onnx", edit)
    with pytest.raises(ContractError) as e:
        PolicyRuntime(path)
    assert_one_line(e.value, *words)


def test_unknown_contract_fields_are_allowed(models, tmp_path):
    """A later minor version may add fields; infinite Box bounds are valid JSON here."""
    path = with_contract(models("nav").onnx, tmp_path / "more.onnx",
                         lambda c: {**c, "contract_version": "1.3", "added_later": {"x": 1}})
    rt = PolicyRuntime(path)
    assert rt.step(stream(models, "nav", 1, 1)[0]).shape == (1, 2)


# -- state-file fuzz -----------------------------------------------------------------------
class _Marker:
    """Unpickling this would create ``path``: proof that nothing was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _members(raw: bytes) -> list[tuple[int, int]]:
    """Byte ranges of each member's content (npy header + data) inside an npz file
    (np.savez stores them uncompressed, so they appear verbatim)."""
    import zipfile

    out = []
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        for info in z.infolist():
            content = z.read(info)
            start = raw.find(content, info.header_offset)
            assert start > 0
            out.append((start, start + len(content)))
    return out


def _bad_files(rt, good: dict, tmp_path) -> list[tuple[str, bytes]]:
    """Files that must all be refused, as (label, bytes)."""
    ident = identity(rt)
    cases: list[tuple[str, bytes]] = []

    def add(label, arrays):
        cases.append((label, npz_bytes(arrays)))

    names = list(good)
    for n in (names[0], "memory", names[-1]):
        shape = good[n].shape
        for dtype in ("<U3", "S3", np.complex64, np.complex128, object,
                      [("a", "<f4")], "datetime64[s]", "timedelta64[s]", "V4"):
            add(f"dtype {n} {dtype}", {**good, n: np.zeros(shape, dtype),
                                       "__identity__": ident})
        add(f"pickled object {n}", {**good, n: good[n].astype(object), "__identity__": ident})
        add(f"overflow {n}", {**good, n: np.full(shape, 1e39), "__identity__": ident})
        for bad_shape in ((shape[0] + 1,) + shape[1:], shape[1:], shape + (1,), (),
                          (shape[0], 0) + shape[2:], shape[::-1] + (2,)):
            add(f"shape {n} {bad_shape}", {**good, n: np.zeros(bad_shape, np.float32),
                                           "__identity__": ident})
    for n in names:
        for value in (np.nan, np.inf, -np.inf):
            arr = good[n].copy()
            arr.flat[-1] = value
            add(f"{value} in {n}", {**good, n: arr, "__identity__": ident})
    marker = tmp_path / "UNPICKLED"
    add("malicious pickle", {**good, "memory": np.array([_Marker(marker)] * 2, object),
                             "__identity__": ident})
    add("extra entry", {**good, "bogus": np.zeros(3, np.float32), "__identity__": ident})
    add("extra state name", {**good, "state_in.h": good["h"], "__identity__": ident})
    add("missing memory", {**{k: v for k, v in good.items() if k != "memory"},
                           "__identity__": ident})
    add("only identity", {"__identity__": ident})
    add("no identity", dict(good))
    add("identity not json", {**good, "__identity__": np.frombuffer(b"{not json", np.uint8)})
    add("identity not utf-8", {**good, "__identity__": np.frombuffer(b"\xff\xfe\x00", np.uint8)})
    add("identity float", {**good, "__identity__": ident.astype(np.float32)})
    add("identity 2-D", {**good, "__identity__": ident[None]})
    add("identity list", {**good, "__identity__": np.frombuffer(b"[1, 2]", np.uint8)})
    add("identity nested 100k", {**good, "__identity__": np.frombuffer(
        b"[" * 100_000 + b"]" * 100_000, np.uint8)})
    add("identity object", {**good, "__identity__": np.array([rt.state_identity()], object)})
    other = dict(rt.state_identity(), batch=rt.batch + 1)
    add("identity other batch", {**good, "__identity__": np.frombuffer(
        json.dumps(other).encode(), np.uint8)})
    other = dict(rt.state_identity(), checkpoint_sha256="0" * 64)
    add("identity other model", {**good, "__identity__": np.frombuffer(
        json.dumps(other).encode(), np.uint8)})
    buf = io.BytesIO()
    np.save(buf, np.array([_Marker(marker)], object), allow_pickle=True)
    cases.append(("a pickled .npy", buf.getvalue()))
    buf = io.BytesIO()
    np.save(buf, good["h"])
    cases.append(("a plain .npy", buf.getvalue()))
    import pickle
    cases.append(("a pickle", pickle.dumps({**good, "__identity__": ident})))
    cases.append(("empty", b""))
    cases.append(("text", b"not a state file\n" * 20))
    cases.append(("random", np.random.default_rng(0).bytes(3000)))
    return cases


def test_state_file_fuzz(models, tmp_path):
    """From a valid state file (save_state): crafted bad files, truncations, flipped bits.
    Each is refused with a StateError (a ValueError) of one line, leaving the runtime's
    state bit-identical, or, for a flipped bit in zip bookkeeping nothing reads (a
    timestamp, say), loads exactly the saved state. Bounded to a few seconds."""
    rt, twin, _ = stepped(models, batch=1, ticks=6)
    saved_from = PolicyRuntime(models("dnc").onnx)  # a state of the same model, not rt's
    for x in stream(models, "dnc", 3, 1, seed=5):
        saved_from.step(x)
    good = saved_from.snapshot()
    raw = saved_from.save_state(tmp_path / "good.npz").read_bytes()
    own = twin.snapshot()  # rt's state, to go back to after a file loaded
    assert any(own[k].tobytes() != v.tobytes() for k, v in good.items())
    path = tmp_path / "fuzzed.npz"
    before = full_state(rt)

    def load(data: bytes) -> bool:
        """True if ``data`` loaded (then it must be exactly ``good``; rt goes back to
        its own state); False if it was refused as it should be."""
        nonlocal before
        path.write_bytes(data)
        try:
            rt.load_state(path)
        except ValueError as e:
            assert isinstance(e, StateError), f"{type(e).__name__}: {e}"
            assert_one_line(e, "state file")
            assert full_state(rt) == before
            return False
        for k, v in rt.snapshot().items():
            assert v.tobytes() == good[k].tobytes(), k
        rt.restore(own)
        before = full_state(rt)
        return True

    assert load(raw)  # the intact file loads, exactly

    # Crafted files: every one refused, nothing unpickled.
    cases = _bad_files(rt, good, tmp_path)
    assert len(cases) > 90
    for label, data in cases:
        assert not load(data), label
    assert not (tmp_path / "UNPICKLED").exists()

    # Truncated: every length near both ends, every 11th in between.
    lengths = sorted(set(range(64)) | set(range(len(raw) - 64, len(raw)))
                     | set(range(0, len(raw), 11)))
    for n in lengths:
        assert not load(raw[:n]), f"truncated to {n} bytes"

    # Flipped bits: one at each of 900 random bytes, and every bit of the memory
    # tensor's npy header (dtype, byte order, shape). A flip inside a member (npy header,
    # data, identity; CRC-32 covers them) must be refused; one in zip bookkeeping may
    # load, and then loads exactly the saved state (checked in load()).
    members = _members(raw)
    inside = np.zeros(len(raw), bool)
    for a, b in members:
        inside[a:b] = True
    rng = np.random.default_rng(0)
    flips = [(int(i), int(rng.integers(8))) for i in rng.choice(len(raw), 900, replace=False)]
    memory_at = next(a for (a, _), name in zip(members, good) if name == "memory")
    flips += [(i, bit) for i in range(memory_at, memory_at + 80) for bit in range(8)]
    accepted = []
    for i, bit in flips:
        flipped = bytearray(raw)
        flipped[i] ^= 1 << bit
        if load(bytes(flipped)):
            assert not inside[i], f"a flipped bit {bit} at byte {i} (inside a member) loaded"
            accepted.append(i)
    assert inside.sum() > 0.5 * len(raw)
    assert len(accepted) < 0.2 * len(flips), accepted
