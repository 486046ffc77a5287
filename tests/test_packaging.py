"""Each distribution works when installed alone, with only the dependencies it declares.

The root (``pip install .``: dnc_core, sim, training, export and the runtime they use) and
the robot package (``pip install ros2_ws/src/dnc_policy``: the runtime with numpy and
onnxruntime) are built as wheels and installed into fresh virtual environments that see
nothing else: no source tree, no editable install, and of this environment's packages
only the distributions the wheel's ``Requires-Dist`` names (followed recursively). A
module that a wheel forgets to ship, or a dependency it forgets to declare, fails here.
No network is used: the dependencies are linked from this environment, not downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import exported
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def tracked(paths: list[str]) -> list[str]:
    """The files of ``paths`` a commit of this tree would hold (tracked or not ignored)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                          "--", *paths], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def build_wheel(files: list[str], source: str, out: Path) -> Path:
    """The wheel of ``source`` (a folder, relative to the repository) built from a copy of
    the tracked ``files`` only, as a fresh clone has them: no build/ or egg-info left by
    earlier builds (setuptools would package a stale build/lib)."""
    tree = out / "tree"
    for f in files:
        (tree / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, tree / f)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(out), str(tree / source)],
                   check=True, capture_output=True, cwd=out)
    (wheel,) = out.glob("*.whl")
    return wheel


def requirements(wheel: Path, extras: tuple[str, ...] = ()) -> list[str]:
    """The distribution names a wheel requires (with ``extras``), markers evaluated."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in lines
            if line.startswith("Requires-Dist:")]
    return [r.name for r in reqs
            if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in ("",) + extras)]


def closure(names: list[str]) -> set[str]:
    """These distributions and everything they require, as installed here."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        dist = metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for line in dist.requires or []:
            r = Requirement(line)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)
    return seen


def fresh_env(tmp: Path, wheel: Path, deps: set[str]) -> Path:
    """A virtual environment holding ``wheel`` (unpacked as pip would) and links to the
    installed files of ``deps`` only. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(tmp)}))
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if not name.split("/", 1)[0].endswith(".data"):  # scripts, share/: not needed
                z.extract(name, site)
    for key in deps:
        dist = metadata.distribution(key)
        top = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for entry in top:
            src = Path(dist.locate_file(entry))
            if src.exists() and not (site / entry).exists():
                (site / entry).symlink_to(src)
    return tmp / "bin" / "python"


def run_alone(python: Path, code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    out = subprocess.run([str(python), "-c", code], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("wheels")
    root = tracked(["setup.py", "pyproject.toml", "README.md", "dnc_core", "sim", "training",
                    "export", "ros2_ws/src"])
    return {"root": build_wheel(root, ".", tmp / "root"),
            "robot": build_wheel(tracked(["ros2_ws/src/dnc_policy"]), "ros2_ws/src/dnc_policy",
                                 tmp / "robot")}


def test_the_two_distributions_have_different_names_and_their_own_modules(wheels):
    # One name for both would make pip uninstall one when it installs the other.
    names = {k: w.name.split("-")[0] for k, w in wheels.items()}
    assert names == {"root": "dnc_policy_workstation", "robot": "dnc_policy"}
    top = {k: {n.split("/")[0] for n in zipfile.ZipFile(w).namelist() if "dist-info" not in n
               and ".data" not in n} for k, w in wheels.items()}
    assert top == {"root": {"dnc_core", "sim", "training", "export", "dnc_policy",
                            "dnc_policy_tools"}, "robot": {"dnc_policy"}}
    # a robot install is the node, the runtime and the contract: no workstation tools
    robot = {n.split("/")[-1] for n in zipfile.ZipFile(wheels["robot"]).namelist()
             if n.startswith("dnc_policy/")}
    assert robot == {"__init__.py", "contract.py", "controller.py", "files.py", "node.py",
                     "realtime.py", "runtime.py", "settings.py", "snapshots.py", "stats.py",
                     "statefile.py"}


def test_the_root_install_alone_trains_saves_exports_and_runs_the_policy(wheels, tmp_path):
    py = fresh_env(tmp_path / "venv", wheels["root"], closure(requirements(wheels["root"])))
    work = tmp_path / "work"
    work.mkdir()
    code = f"""
import json, subprocess, sys
from pathlib import Path
run = Path({str(work)!r}) / "run"
def call(*args):
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    if out.returncode:
        sys.exit(" ".join(args) + " failed: " + out.stderr[-2000:])
    return out.stderr
log = call("training.a2c", "--total-steps", "256", "--no-progress",
           "--set", "run_dir=" + str(run), "--set", "compile=false")
(ckpt,) = run.glob("*/checkpoints/latest.pt")
call("export.onnx", str(ckpt), "-o", str(run / "policy.onnx"), "--parity-steps", "20")
import dnc_core, export, sim, training
from dnc_policy.runtime import PolicyRuntime
rt = PolicyRuntime(run / "policy.onnx")
print(json.dumps({{"files": [m.__file__ for m in (dnc_core, export, sim, training)],
                  "log": log, "metrics": (ckpt.parents[1] / "metrics.csv").is_file(),
                  "action": rt.step([0.0] * rt.obs_dim).tolist(),
                  "configs": len(list((Path(training.__file__).parent / "configs").glob("*.yaml")))}}))
"""
    out = json.loads(run_alone(py, code, work).splitlines()[-1])
    assert all(str(tmp_path / "venv") in f for f in out["files"]), out["files"]  # not the tree
    assert out["configs"] == len(list((ROOT / "training" / "configs").glob("*.yaml")))
    assert len(out["action"]) == 1
    # without the 'train' extra: no TensorBoard, said once, and metrics.csv still written
    assert "TensorBoard is not installed" in out["log"] and out["metrics"]


def test_the_robot_install_alone_runs_a_model_with_numpy_and_onnxruntime(
        wheels, tmp_path, tmp_path_factory):
    model = tmp_path / "policy.onnx"
    model.write_bytes(exported.get_model("dnc", tmp_path_factory).onnx.read_bytes())
    declared = requirements(wheels["robot"], extras=("cpu",))
    assert "onnxruntime" in declared and "torch" not in declared
    py = fresh_env(tmp_path / "venv", wheels["robot"], closure(declared))
    code = f"""
import importlib.util, json, sys
from dnc_policy.runtime import PolicyRuntime
rt = PolicyRuntime({str(model)!r})
for _ in range(5):
    action = rt.step([0.0] * rt.obs_dim)
rt.save_state({str(tmp_path / 'mem.npz')!r}); rt.load_state({str(tmp_path / 'mem.npz')!r})
print(json.dumps({{"action": action.tolist(),
                  "torch_installed": importlib.util.find_spec("torch") is not None,
                  "loaded": sorted({{"torch", "gymnasium", "dnc_core", "training"}} & set(sys.modules))}}))
"""
    out = json.loads(run_alone(py, code, tmp_path).splitlines()[-1])
    assert out == {"action": out["action"], "torch_installed": False, "loaded": []}
