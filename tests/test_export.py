"""ONNX export (DESIGN.md §4): the graph, its contract, normalisation and clipping inside
the graph, parity with PyTorch, the command line, and evaluation through the runtime.

The policies are the session's shared ones (tests/exported.py, handed out by the
``models`` fixture of conftest.py).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import sim  # noqa: F401  (registers the dnc/ envs)
from exported import CORE_OF, KINDS, SPECS, STATE_NAMES, env_observations, ort_feed, torch_tick
from export import evaluate as onnx_evaluate
from export import onnx as onnx_export
from dnc_policy.contract import CONTRACT_KEY
from export.onnx import build_contract, export_policy, sha256_of
from export.parity import check_parity
from training import evaluate as torch_evaluate

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


# -- the graph -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SPECS))
def test_graph_is_valid_with_the_contracted_inputs_outputs_and_dynamic_batch(models, name):
    m = models(name)
    policy, _ = m.load()
    model = onnx.load(str(m.onnx))
    onnx.checker.check_model(model, full_check=True)
    opset = {o.domain: o.version for o in model.opset_import}
    assert opset.get("", opset.get("ai.onnx", 0)) >= 17

    names = [n for n, _ in policy.state_spec]
    assert names == STATE_NAMES.get(name, STATE_NAMES[CORE_OF.get(name, "lstm")])
    kind = KINDS[name]
    dist = ["action_mean", "action_log_std"] if kind == "box" else ["logits"]
    assert [i.name for i in model.graph.input] == (
        ["obs", "reset"] + [f"state_in.{n}" for n in names])
    assert [o.name for o in model.graph.output] == (
        ["action", "value"] + dist + [f"state_out.{n}" for n in names])
    elem = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    want = onnx.TensorProto.FLOAT if kind == "box" else onnx.TensorProto.INT64
    assert elem["action"] == want
    for v in list(model.graph.input) + list(model.graph.output):  # batch axis symbolic
        d0 = v.type.tensor_type.shape.dim[0]
        assert d0.dim_param and not d0.HasField("dim_value"), v.name

    sess = ort.InferenceSession(str(m.onnx), providers=["CPUExecutionProvider"])
    _, ck = m.load()
    obs_pool = env_observations(ck["env"], ck["env_kwargs"], 7)
    act_dim = policy.action.dim
    for b in (1, 3, 7):
        feed = ort_feed(policy, obs_pool[:b], np.ones(b, np.float32))
        res = dict(zip([o.name for o in model.graph.output], sess.run(None, feed)))
        action = res["action"]
        assert action.dtype == (np.float32 if kind == "box" else np.int64)
        assert action.shape == ((b,) if kind == "discrete" else (b, act_dim))
        assert res["value"].shape == (b,)
        for n, shape in policy.state_spec:
            assert res[f"state_out.{n}"].shape == (b,) + tuple(shape)
        # Each row is computed independently of the batch it is in.
        ref = dict(zip(res, sess.run(None, ort_feed(policy, obs_pool[:1], np.ones(1, np.float32)))))
        np.testing.assert_allclose(res["value"][:1], ref["value"], atol=1e-6)


def _shapes(model) -> dict:
    """Each value's shape in ``model`` as a list of sizes and symbolic names."""
    vals = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in vals if v.type.tensor_type.HasField("shape")}


@pytest.mark.parametrize("name", ["dnc", "critic"])
def test_exported_graph_has_no_reshape_that_keeps_its_input_shape(models, name):
    # The DNC's read vectors are flattened for the reset and again for the controller:
    # the exporter's two reshapes compose to a no-op that export's simplify drops.
    model = onnx.load(str(models(name).onnx))
    shapes = _shapes(model)
    reshapes = [n for n in model.graph.node if n.op_type == "Reshape"]
    assert reshapes and all(n.input[0] in shapes and n.output[0] in shapes for n in reshapes)
    assert [n.name for n in reshapes if shapes[n.input[0]] == shapes[n.output[0]]] == []


def test_simplify_drops_only_the_reshapes_that_keep_the_shape():
    from onnx import TensorProto as TP
    from onnx import helper as oh

    def info(name, shape):
        return oh.make_tensor_value_info(name, TP.FLOAT, shape)
    nodes = [oh.make_node("Relu", ["x"], ["a"]),
             oh.make_node("Reshape", ["a", "s6"], ["same"]),  # [batch, 6] -> [batch, 6]
             oh.make_node("Neg", ["same"], ["y"]),
             oh.make_node("Sigmoid", ["x"], ["b"]),
             oh.make_node("Reshape", ["b", "s6"], ["z"]),  # a no-op too, but a graph output
             oh.make_node("Reshape", ["a", "s23"], ["w"]),  # [batch, 6] -> [batch, 2, 3]
             oh.make_node("Reshape", ["x", "s6"], ["u"]),  # output shape not given
             oh.make_node("Tanh", ["u"], ["v"])]
    graph = oh.make_graph(
        nodes, "g", [info("x", ["batch", 6])],
        [info("y", ["batch", 6]), info("z", ["batch", 6]), info("w", ["batch", 2, 3]),
         info("v", ["batch", 6])],
        [oh.make_tensor("s6", TP.INT64, [2], [-1, 6]),
         oh.make_tensor("s23", TP.INT64, [3], [-1, 2, 3])],
        value_info=[info("a", ["batch", 6]), info("b", ["batch", 6]), info("same", ["batch", 6])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    lean = onnx_export.simplify(model)
    kept = [(n.input[0], n.output[0]) for n in lean.graph.node if n.op_type == "Reshape"]
    assert sorted(kept) == [("a", "w"), ("b", "z"), ("x", "u")]
    assert [n.input[0] for n in lean.graph.node if n.op_type == "Neg"] == ["a"]
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    run = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
           .run(None, {"x": x}) for m in (model, lean)]
    for before, after in zip(*run):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("name", list(SPECS))
def test_contract_describes_the_checkpoint_and_the_graph(models, name):
    m = models(name)
    policy, ck = m.load()
    c = m.contract()
    assert c["contract_version"] == "1.2"
    assert c["state_bounds"] == policy.state_bounds and "h" in c["state_bounds"]
    # A separate critic core's state is bounded as the actor core's is, under its names.
    assert ("critic_h" in c["state_bounds"]) == (name == "critic")
    assert c["obs_dim"] == policy.obs_dim == ck["obs_dim"]
    assert c["observation_space"] == ck["observation_space"]
    assert c["action_space"] == ck["action_space"]
    assert c["action"]["kind"] == KINDS[name]
    assert c["action"]["dtype"] == ("float32" if KINDS[name] == "box" else "int64")
    assert c["state"] == [{"name": n, "shape": list(s)} for n, s in policy.state_spec]
    assert c["core"] == {"kind": ck["policy_config"]["core"],
                         "config": ck["policy_config"]["core_config"]}
    assert c["core"]["kind"] == CORE_OF.get(name, "lstm")
    assert c["critic_core"] == ck["policy_config"].get("critic_core")
    assert (c["critic_core"] is not None) == (name == "critic")
    # The critic model's two tanh layers per head reached the trained policy (and so the
    # graph whose parity the tests check).
    assert ck["policy_config"].get("head_layers", 1) == (2 if name == "critic" else 1)
    if name == "critic":  # Linear, Tanh, Linear, Tanh, Linear
        assert len(policy.actor) == len(policy.critic) == 5
    assert c["env"] == {"id": ck["env"], "kwargs": ck["env_kwargs"]}
    norm = c["obs_normalizer"]
    assert norm["enabled"] is True
    np.testing.assert_array_equal(norm["mean"], ck["policy_state"]["obs_norm.mean"].numpy())
    np.testing.assert_array_equal(norm["var"], ck["policy_state"]["obs_norm.var"].numpy())
    assert norm["count"] == float(ck["policy_state"]["obs_norm.count"]) > 0
    assert c["checkpoint"]["sha256"] == hashlib.sha256(m.checkpoint.read_bytes()).hexdigest()
    assert c["checkpoint"]["global_step"] == ck["global_step"]
    model = onnx.load(str(m.onnx))
    assert c["inputs"] == [i.name for i in model.graph.input]
    assert c["outputs"] == [o.name for o in model.graph.output]
    assert {"torch", "onnx", "onnxruntime"} <= set(c["exporter"]["versions"])


# -- normalisation and clipping inside the graph -------------------------------------------
def _run(path, feed) -> dict:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))


def test_normaliser_is_inside_the_graph(models, tmp_path):
    m = models("lstm")
    policy, ck = m.load()
    assert float(policy.obs_norm.count) > 0
    assert policy.obs_norm.mean.abs().max() > 0.05 and (policy.obs_norm.var - 1).abs().max() > 0.05
    obs = env_observations(ck["env"], ck["env_kwargs"], 8, seed=3)
    reset = np.ones(8, np.float32)
    # Raw observations in, the PyTorch policy's outputs out.
    _, out, state = torch_tick(policy, obs, policy.initial_state(8), reset)
    res = _run(m.onnx, ort_feed(policy, obs, reset))
    np.testing.assert_allclose(res["value"], out.value.numpy(), atol=1e-5)
    np.testing.assert_allclose(res["logits"], out.dist.numpy(), atol=1e-5)
    np.testing.assert_allclose(res["state_out.h"], state.h.numpy(), atol=1e-5)

    # Other normaliser statistics, other ONNX outputs (the ones of the changed policy).
    changed = copy.deepcopy(policy)
    with torch.no_grad():
        changed.obs_norm.mean += 0.3
        changed.obs_norm.var *= 4.0
    path = export_policy(changed, build_contract(changed, ck, sha256_of(m.checkpoint)),
                         tmp_path / "changed.onnx")
    res2 = _run(path, ort_feed(policy, obs, reset))
    assert np.abs(res2["value"] - res["value"]).max() > 1e-3
    _, out2, _ = torch_tick(changed, obs, changed.initial_state(8), reset)
    np.testing.assert_allclose(res2["value"], out2.value.numpy(), atol=1e-5)
    c = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[CONTRACT_KEY])
    np.testing.assert_allclose(c["obs_normalizer"]["mean"], changed.obs_norm.mean.numpy())


def test_box_actions_come_out_clipped_to_the_bounds(models):
    m = models("nav")
    policy, ck = m.load()
    low, high = np.array(ck["action_space"]["low"]), np.array(ck["action_space"]["high"])
    c = m.contract()
    assert c["action"]["low"] == list(low) and c["action"]["high"] == list(high)
    obs = env_observations(ck["env"], ck["env_kwargs"], 16, seed=1)
    reset = np.zeros(16, np.float32)
    reset[0] = 1.0
    res = _run(m.onnx, ort_feed(policy, obs, reset))
    mean = res["action_mean"]
    assert (mean[:, 0] > high[0]).all(), "the fixture forces dim 0 above its bound"
    assert ((mean[:, 1] > low[1]) & (mean[:, 1] < high[1])).all()
    np.testing.assert_array_equal(res["action"], np.clip(mean, low, high).astype(np.float32))
    assert (res["action"][:, 0] == np.float32(high[0])).all()
    np.testing.assert_array_equal(res["action_log_std"],
                                  np.broadcast_to(policy.log_std.detach().numpy(), mean.shape))
    action, out, _ = torch_tick(policy, obs, policy.initial_state(16), reset)
    np.testing.assert_allclose(mean, out.dist.numpy(), atol=1e-5)
    np.testing.assert_allclose(res["action"], action, atol=1e-6)


# -- parity --------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("name", ["dnc", "lstm", "gru", "critic"])
def test_parity_with_pytorch_on_env_observations(models, name, batch):
    m = models(name)
    policy, ck = m.load()
    r = check_parity(policy, m.onnx, ck["env"], ck["env_kwargs"], steps=300, batch=batch)
    assert r.ok, r.line()
    assert r.steps == 300 and r.batch == batch and r.resets > batch  # episode starts too
    assert "PASS" in r.line()


@pytest.mark.parametrize("name", ["nav", "copy", "multi"])
def test_parity_for_the_other_action_kinds(models, name):
    m = models(name)
    policy, ck = m.load()
    r = check_parity(policy, m.onnx, ck["env"], ck["env_kwargs"], steps=100, batch=2)
    assert r.ok, r.line()


@pytest.mark.parametrize("part", ["critic", "core"])
def test_parity_fails_when_the_export_differs_from_the_policy(models, part):
    m = models("dnc")
    policy, ck = m.load()
    with torch.no_grad():  # the file holds the checkpoint; the policy now differs
        if part == "critic":
            policy.critic.bias += 1e-2
        else:
            next(policy.core.parameters()).view(-1)[0] += 0.5
    r = check_parity(policy, m.onnx, ck["env"], ck["env_kwargs"], steps=50, batch=2)
    assert not r.ok and "FAIL" in r.line()
    if part == "critic":
        assert r.max_value_diff > 1e-3 and r.max_state_diff < 1e-5
    else:
        assert r.max_state_diff > 1e-4


# -- the command line ----------------------------------------------------------------------
@pytest.mark.parametrize("case", ["missing", "truncated", "text", "other_torch_file",
                                  "empty_run_folder"])
def test_cli_refuses_bad_checkpoints_with_exit_2(models, tmp_path, capsys, case):
    good = models("lstm").checkpoint
    path = tmp_path / "ckpt.pt"
    message = {"missing": "does not exist", "truncated": r"could not be read \(truncated",
               # (a text file is reported as unreadable; either wording is clear enough)
               "text": r"(is not a dnc-policy checkpoint|could not be read)",
               "other_torch_file": r"is not a dnc-policy checkpoint \(no format",
               "empty_run_folder": "has no checkpoints/latest.pt"}[case]
    if case == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "text":
        path.write_text("this is not a checkpoint\n")
    elif case == "other_torch_file":
        torch.save({"weights": torch.zeros(3)}, path)
    elif case == "empty_run_folder":
        path = tmp_path / "run"
        path.mkdir()
    with pytest.raises(SystemExit) as e:
        onnx_export.main([str(path), "-o", str(tmp_path / "out.onnx")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(message, err) and str(path) in err
    assert not (tmp_path / "out.onnx").exists()


def test_cli_writes_policy_onnx_into_the_run_folder_and_passes(models):
    m = models("lstm")
    default = m.run_dir / "policy.onnx"
    assert m.checkpoint == m.run_dir / "checkpoints" / "latest.pt" and not default.exists()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "export.onnx", str(m.checkpoint),
                        "--parity-steps", "200"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    parity = [ln for ln in lines if ln.startswith("  parity batch ")]
    assert [ln.split(":")[0] for ln in parity] == ["  parity batch 1", "  parity batch 4"]
    assert all("200 steps" in ln and ln.endswith("-> PASS") for ln in parity), p.stdout
    assert lines[-1] == f"OK: {default}"
    c = json.loads({q.key: q.value for q in onnx.load(str(default)).metadata_props}[CONTRACT_KEY])
    assert c["checkpoint"]["sha256"] == sha256_of(m.checkpoint)
    assert not [f for f in default.parent.iterdir() if f.name.endswith(".tmp")]


def test_cli_exits_nonzero_when_parity_fails(models, tmp_path, capsys, monkeypatch):
    """Fault injection: the real export runs, then one weight of the PyTorch policy that
    the parity check compares against is changed."""
    m = models("dnc")
    real_build = onnx_export.build_model  # what the CLI writes to its checked temp file

    def build_then_perturb(policy, contract):
        model = real_build(policy, contract)
        with torch.no_grad():
            policy.critic.bias += 1e-2
        return model

    monkeypatch.setattr(onnx_export, "build_model", build_then_perturb)
    out = tmp_path / "broken.onnx"
    rc = onnx_export.main([str(m.checkpoint), "-o", str(out), "--parity-steps", "20"])
    text = capsys.readouterr().out
    assert rc != 0, text
    assert "-> FAIL" in text and f"PARITY FAILED: {out}" in text
    assert not out.exists()  # a model that failed its checks is never left in place


def test_cli_default_parity_check_passes_for_a_gru(models, tmp_path, capsys):
    """The export CLI with its defaults: parity over 1000 steps at batch 1 and 4."""
    m = models("gru")
    out = tmp_path / "gru.onnx"
    rc = onnx_export.main([str(m.checkpoint), "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "(gru, dnc/TMaze-v0)" in text
    parity = [ln for ln in text.splitlines() if ln.startswith("  parity batch ")]
    assert [ln.split(":")[0] for ln in parity] == ["  parity batch 1", "  parity batch 4"]
    assert all("1000 steps" in ln and ln.endswith("-> PASS") for ln in parity), text
    model = onnx.load(str(out))
    assert [i.name for i in model.graph.input] == ["obs", "reset", "state_in.h"]
    c = json.loads({q.key: q.value for q in model.metadata_props}[CONTRACT_KEY])
    assert c["state"] == [{"name": "h", "shape": [16]}]
    assert c["core"] == {"kind": "gru", "config": {"input_size": 4, "hidden_size": 16}}


# -- evaluation through the runtime equals evaluation of the checkpoint --------------------
@pytest.mark.parametrize("name", ["lstm", "dnc", "gru", "critic"])
def test_onnx_evaluation_equals_checkpoint_evaluation(models, name, capsys):
    m = models(name)
    onnx_evaluate.main([str(m.onnx), "--episodes", "30", "--json"])
    from_onnx = json.loads(capsys.readouterr().out)
    torch_evaluate.main([str(m.checkpoint), "--episodes", "30", "--json"])
    from_torch = json.loads(capsys.readouterr().out)
    for key in ("returns", "successes", "lengths", "episodes", "seed"):
        assert from_onnx[key] == from_torch[key], key
    assert len(from_onnx["returns"]) == 30 and None not in from_onnx["successes"]
    if name == "lstm":  # the trained policy solves most of its mazes
        assert from_onnx["success_rate"] >= 0.8, from_onnx
