"""The dependency rules of docs/ARCHITECTURE.md ("Who may import what"), read from the
source: every ``import`` statement of every module, those inside functions included."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROS_SRC = ROOT / "ros2_ws" / "src"  # dnc_policy (the robot) and dnc_policy_tools
# The modules that the workstation packages may use from the robot package.
RUNTIME_API = {"dnc_policy", "dnc_policy.contract", "dnc_policy.files", "dnc_policy.runtime"}
# Benchmark tools that live beside the code they measure (subprocesses, /proc).
CORE_TOOLS = {"dnc_core.bench"}


def package_dir(package: str) -> Path:
    return ROS_SRC / package / package if package.startswith("dnc_policy") else ROOT / package


def modules(package: str) -> dict[str, Path]:
    base = package_dir(package).parent
    out = {}
    for p in sorted(package_dir(package).rglob("*.py")):
        parts = list(p.relative_to(base).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports(name: str, path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                mod = ".".join(p for p in (base, node.module) if p)
            else:
                mod = node.module
            out.add(mod)
            # ``from pkg import sub`` may import a submodule: count it when it is one.
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def offending(package: str, banned, skip=frozenset()) -> dict[str, list[str]]:
    """Module -> the imports of it that start with a banned top-level name or module."""
    found = {}
    for name, path in modules(package).items():
        if name in skip:
            continue
        bad = sorted(m for m in imports(name, path)
                     if any(m == b or m.startswith(b + ".") for b in banned))
        if bad:
            found[name] = bad
    return found


def test_dnc_core_is_pure_pytorch():
    banned = {"gymnasium", "sim", "training", "export", "dnc_policy", "rclpy", "onnxruntime",
              "yaml", "subprocess", "socket"}
    assert offending("dnc_core", banned, skip=CORE_TOOLS) == {}
    # ... and no module of it pulls in its benchmark tool.
    assert offending("dnc_core", CORE_TOOLS, skip=CORE_TOOLS) == {}


def test_sim_is_gymnasium_and_numpy_without_torch():
    banned = {"torch", "dnc_core", "training", "export", "dnc_policy", "rclpy", "onnxruntime"}
    assert offending("sim", banned) == {}


def test_the_robot_side_imports_no_torch_no_workstation_code_and_no_tools():
    banned = {"torch", "gymnasium", "dnc_core", "sim", "training", "export", "dnc_policy_tools",
              "matplotlib", "yaml"}
    assert offending("dnc_policy", banned) == {}
    assert len(modules("dnc_policy")) >= 8  # the reader sees the package


def test_the_tools_use_the_robot_package_and_sim_but_no_torch():
    # the sim bridge runs sim's Gymnasium envs; nothing of the trainers or the cores
    assert offending("dnc_policy_tools", {"torch", "dnc_core", "training", "export"}) == {}
    assert "dnc_policy_tools.sim_bridge" in modules("dnc_policy_tools")


def test_the_contract_needs_only_the_standard_library():
    mods = modules("dnc_policy")
    used = {m.split(".")[0] for m in imports("dnc_policy.contract", mods["dnc_policy.contract"])}
    assert used - {"__future__"} <= set(sys.stdlib_module_names), used


@pytest.mark.parametrize("package", ["training", "export"])
def test_the_workstation_uses_only_the_runtime_api_of_the_robot_package(package):
    # training.demo runs the sim in the loop (dnc_policy_tools.sim_loop) as `make demo`
    allowed = RUNTIME_API | ({"dnc_policy_tools.sim_loop"} if package == "training" else set())
    found = {}
    for name, path in modules(package).items():
        bad = sorted(m for m in imports(name, path)
                     if m.split(".")[0] in ("dnc_policy", "dnc_policy_tools") and m not in allowed
                     and m.rpartition(".")[0] not in allowed - {"dnc_policy"})
        if bad:
            found[name] = bad
    assert found == {}


def test_the_rules_see_violations(tmp_path):
    """The checker itself: imports inside functions, relative ones resolved."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import gymnasium\n    from ..sim import tmaze\n"
                     "    from .runtime import PolicyRuntime\n")
    assert imports("dnc_core.probe", probe) == {
        "gymnasium", "sim", "sim.tmaze", "dnc_core.runtime", "dnc_core.runtime.PolicyRuntime"}
    assert imports("dnc_policy.probe", probe) >= {"dnc_policy.runtime", "sim.tmaze"}
