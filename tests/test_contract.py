"""The ONNX contract module (dnc_policy.contract): the one definition the exporter writes
through and the runtime reads through."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest
from dnc_policy import contract as c
from onnx import TensorProto, helper

from dnc_core.policy import ACTION_KINDS as POLICY_ACTION_KINDS


def minimal_contract(kind: str = "discrete") -> dict:
    """A contract with every field the schema requires, for a policy with a 2-slot state."""
    action = {"discrete": {"kind": "discrete", "n": 3},
              "box": {"kind": "box", "low": [-1.0, -2.0], "high": [1.0, 2.0]}}[kind]
    inputs, outputs = c.io_names(["h", "memory"], kind)
    return {"contract_version": c.CONTRACT_VERSION, "obs_dim": 4,
            "action": {**action, "dtype": c.action_dtype(kind),
                       "shape": c.action_shape(kind, len(action.get("low", [])))},
            "distribution": {"kind": kind, "outputs": c.distribution_outputs(kind)},
            "state": [{"name": "h", "shape": [8]}, {"name": "memory", "shape": [2, 3]}],
            "inputs": inputs, "outputs": outputs,
            "core": {"kind": "dnc", "config": {}}, "env": {"id": "dnc/TMaze-v0", "kwargs": {}}}


def empty_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["B", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 4])
    graph = helper.make_graph([helper.make_node("Identity", ["obs"], ["y"])], "g", [x], [y])
    return helper.make_model(graph)


def test_io_names_follow_the_documented_order_for_each_action_kind():
    assert c.io_names(["h", "usage"], "box") == (
        ["obs", "reset", "state_in.h", "state_in.usage"],
        ["action", "value", "action_mean", "action_log_std", "state_out.h", "state_out.usage"])
    assert c.io_names(["h"], "multi_discrete") == (
        ["obs", "reset", "state_in.h"], ["action", "value", "logits", "state_out.h"])
    assert c.action_shape("discrete", 1) == ["B"] and c.action_shape("box", 2) == ["B", 2]
    assert c.action_dtype("box") == "float32" and c.action_dtype("multi_binary") == "int64"


def test_a_written_contract_reads_back_equal_and_replaces_an_older_entry():
    model = empty_model()
    first, second = minimal_contract("discrete"), minimal_contract("box")
    c.write_contract(model, first)
    assert c.contract_of_model(model) == first
    c.write_contract(model, second)
    assert [e.key for e in model.metadata_props] == [c.CONTRACT_KEY]  # one entry, replaced
    # ... and the bytes survive serialisation as the runtime reads them.
    assert c.contract_of_model(onnx.load_from_string(model.SerializeToString())) == second


def test_the_writer_refuses_a_contract_the_reader_would_refuse():
    bad = minimal_contract()
    del bad["obs_dim"]
    model = empty_model()
    with pytest.raises(c.ContractError, match="contract lacks 'obs_dim'"):
        c.write_contract(model, bad)
    assert len(model.metadata_props) == 0  # nothing half-written
    wrong_outputs = minimal_contract("box")
    wrong_outputs["distribution"]["outputs"] = ["logits"]
    with pytest.raises(c.ContractError, match="distribution.outputs"):
        c.to_json(wrong_outputs)


def test_reading_refuses_a_missing_contract_bad_json_and_another_major_version():
    with pytest.raises(c.ContractError, match=r"no metadata_props\['dnc_policy.contract'\]"):
        c.contract_of_model(empty_model())
    with pytest.raises(c.ContractError, match="not valid JSON"):
        c.from_json("{")
    with pytest.raises(c.ContractError, match="nested too deeply"):
        c.from_json("[" * 100_000 + "]" * 100_000)
    newer = {**minimal_contract(), "contract_version": f"{c.SUPPORTED_MAJOR + 1}.0"}
    with pytest.raises(c.ContractError, match="major version 1"):
        c.from_json(json.dumps(newer))
    later_minor = {**minimal_contract(), "contract_version": f"{c.SUPPORTED_MAJOR}.7",
                   "a_later_field": 1}
    assert c.from_json(json.dumps(later_minor)) == later_minor


def test_debug_state_must_name_state_entries():
    ok = {**minimal_contract(), "debug_state": ["memory"]}
    assert c.from_json(json.dumps(ok)) == ok
    assert c.from_json(json.dumps(minimal_contract()))["state"]  # optional (contract 1.0)
    with pytest.raises(c.ContractError, match=r"'debug_state' .*names from 'state' "
                                              r"\(\['usage'\] are not\)"):
        c.from_json(json.dumps({**minimal_contract(), "debug_state": ["h", "usage"]}))
    with pytest.raises(c.ContractError, match="'debug_state'.*non-empty strings"):
        c.from_json(json.dumps({**minimal_contract(), "debug_state": "usage"}))


def test_state_bounds_are_checked_entry_by_entry():
    def with_bounds(**bounds):
        return json.dumps({**minimal_contract(), "state_bounds": bounds})

    h = {"low": -1.0, "high": 1.0, "sums": "none", "what": "h"}
    ok = {"h": h, "memory": {**h, "sums": "last_axis", "low_tolerance": 1e-7}}
    assert c.from_json(with_bounds(**ok))["state_bounds"] == ok
    assert "state_bounds" not in c.from_json(json.dumps(minimal_contract()))  # optional (<1.2)
    for bounds, message in [
            ({"usage": h}, r"'state_bounds' .*names from 'state' \('usage' is not\)"),
            ({"h": {**h, "low": 2.0}}, r"'state_bounds.h.high' .*>= low \(2.0\)"),
            ({"h": {**h, "high": float("inf")}}, r"'state_bounds.h.high'.*finite number"),
            ({"h": {**h, "low": "0"}}, r"'state_bounds.h.low'.*finite number"),
            ({"h": {**h, "sums": "rows"}}, r"'state_bounds.h.sums'.*one of"),
            ({"h": {**h, "sums": "link"}}, r"'none' or 'last_axis' for the shape \[8\]"),
            ({"memory": {**h, "sums": "link"}}, r"for the shape \[2, 3\] \(a link matrix is"),
            ({"h": {**h, "what": 3}}, r"'state_bounds.h.what'.*a string"),
            ({"h": {**h, "low_tolerance": -1e-6}}, r"'state_bounds.h.low_tolerance'.*>= 0"),
            ({"h": {k: v for k, v in h.items() if k != "sums"}}, r"lacks 'state_bounds.h.sums'"),
            ({"h": [0, 1]}, r"'state_bounds.h'.*an object")]:
        with pytest.raises(c.ContractError, match=message):
            c.from_json(with_bounds(**bounds))


def test_every_core_declares_bounds_the_contract_accepts():
    """What each core of dnc_core declares is a valid contract entry, over its own state
    names (the exporter writes it as it is; write_contract refuses an invalid one)."""
    from dnc_core import CORES
    for kind, cls in CORES.items():
        core = cls(4)
        state = [{"name": n, "shape": list(s)} for n, s in core.state_spec]
        inputs, outputs = c.io_names([n for n, _ in core.state_spec], "discrete")
        contract = {**minimal_contract(), "state": state, "inputs": inputs,
                    "outputs": outputs, "state_bounds": dict(core.state_bounds)}
        assert c.from_json(json.dumps(contract))["state_bounds"] == core.state_bounds, kind
        assert "h" in core.state_bounds, kind  # every core's h is a tanh


def test_the_contract_knows_the_policy_action_kinds():
    # dnc_core (pure PyTorch) cannot import the robot package: the two lists are guarded.
    assert c.ACTION_KINDS == POLICY_ACTION_KINDS


def test_the_contract_module_needs_only_the_standard_library():
    code = ("import sys, dnc_policy.contract; "
            "print(sorted({'numpy', 'torch', 'onnx', 'onnxruntime', 'rclpy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
