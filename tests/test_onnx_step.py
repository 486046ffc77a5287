"""A whole core step (DNC, LSTM, GRU) exports to ONNX and runs in ONNX Runtime exactly like PyTorch.

This is the proof that the allocation's exclusive product (no ``torch.cumprod``) and its
tie-breaking (no sort) are exportable and deterministic across back-ends, including the
first steps where every usage is 0 and all slots tie.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dnc_core import DNCCore, GRUCore, LSTMCore


class Step(torch.nn.Module):
    """One core step with the state as a flat tuple (what an exporter needs)."""

    def __init__(self, core):
        super().__init__()
        self.core = core

    def forward(self, x, reset, state):
        features, new = self.core.step(x, self.core.state_type(*state), reset)
        return (features,) + tuple(new)


def export_step(core, path):
    names = [n for n, _ in core.state_spec]
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.onnx.export(
        Step(core).eval(), (torch.randn(2, core.input_size), torch.zeros(2),
                            tuple(core.initial_state(2))), str(path),
        input_names=["x", "reset"] + [f"state_in.{n}" for n in names],
        output_names=["features"] + [f"state_out.{n}" for n in names],
        dynamic_shapes=({0: batch}, {0: batch}, tuple({0: batch} for _ in names)),
        opset_version=18, dynamo=True, verbose=False)
    return names


_EXPORTED = {}


@pytest.fixture
def exported(request, tmp_path_factory):
    """``(core, path, state names)`` for the core named by the test's ``kind``, exported
    once per session."""
    kind = request.node.callspec.params["kind"]
    if kind not in _EXPORTED:
        torch.manual_seed(0)
        core = {"dnc": lambda: DNCCore(input_size=12, hidden_size=32, memory_slots=16,
                                       word_size=8, read_heads=2),
                "lstm": lambda: LSTMCore(12, 32), "gru": lambda: GRUCore(12, 32)}[kind]().eval()
        path = tmp_path_factory.mktemp("onnx") / f"{kind}_step.onnx"
        _EXPORTED[kind] = (core, path, export_step(core, path))
    return _EXPORTED[kind]


@pytest.mark.parametrize("kind", ["dnc", "lstm", "gru"])
def test_exported_graph_is_valid_and_has_no_cumprod(kind, exported):
    _, path, names = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert "CumProd" not in ops
    assert [i.name for i in model.graph.input] == ["x", "reset"] + [f"state_in.{n}" for n in names]
    assert model.opset_import[0].version >= 17


@pytest.mark.parametrize("kind", ["dnc", "lstm", "gru"])
def test_onnx_runtime_matches_pytorch_over_200_steps_with_resets(kind, exported):
    core, path, names = exported
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = 3  # exported at batch 2: the batch axis is dynamic
    gen = torch.Generator().manual_seed(1)
    state_t = core.initial_state(batch)
    state_o = [s.numpy() for s in state_t]
    worst = 0.0
    for t in range(200):
        x = torch.randn(batch, 12, generator=gen)
        reset = torch.zeros(batch)
        if t in (60, 61, 150):
            reset[t % batch] = 1.0  # episodes restart mid-run, in different rows
        with torch.no_grad():
            feats, state_t = core.step(x, state_t, reset)
        out = sess.run(None, {"x": x.numpy(), "reset": reset.numpy(),
                              **{f"state_in.{n}": s for n, s in zip(names, state_o)}})
        state_o = out[1:]  # each side carries its own state: errors could compound
        for got, want in zip(out, (feats,) + tuple(state_t)):
            np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-5, err_msg=f"step {t}")
            worst = max(worst, float(np.abs(got - want.numpy()).max()))
    assert worst < 1e-5


@pytest.mark.parametrize("kind", ["dnc"])
def test_first_step_with_all_usage_zero_allocates_slot_zero_in_both(kind, exported):
    core, path, names = exported
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state = core.initial_state(4)
    x = torch.randn(4, 12)
    out = sess.run(None, {"x": x.numpy(), "reset": np.ones(4, np.float32),
                          **{f"state_in.{n}": s.numpy() for n, s in zip(names, state)}})
    write_w = out[1 + names.index("write_weights")]
    with torch.no_grad():
        _, st = core.step(x, state, torch.ones(4))
    np.testing.assert_allclose(write_w, st.write_weights.numpy(), rtol=0, atol=1e-6)
    # Empty memory: content weights are uniform and every usage ties, so the write goes
    # to the slot the tie rule offers first, slot 0, in both back-ends.
    assert (write_w.argmax(-1) == 0).all() and (st.write_weights.argmax(-1) == 0).all()
