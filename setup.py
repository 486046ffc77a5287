"""The packages of the workstation distribution (its metadata is in pyproject.toml).

``pip install .`` gives ``dnc_core``, ``sim``, ``training`` and ``export`` with their
configs, and the robot-side runtime they use (``dnc_policy``: the ONNX contract, the
runtime and its atomic file writing), taken from the ROS package's sources in
``ros2_ws/src/dnc_policy`` so that it is written once. The ROS package installs on its
own as well (``pip install ros2_ws/src/dnc_policy`` or colcon); use one or the other in
an environment, not both. A tree without ``ros2_ws`` (docker/Dockerfile.sim copies only
``sim/``) gives just the packages that are present.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
RUNTIME = "ros2_ws/src/dnc_policy/dnc_policy"

packages = find_packages(include=["dnc_core*", "training*", "export*", "sim*"])
package_dir = {}
if (ROOT / RUNTIME / "__init__.py").is_file():
    packages.append("dnc_policy")
    package_dir["dnc_policy"] = RUNTIME

setup(packages=packages, package_dir=package_dir,
      package_data={"training": ["configs/*.yaml"]}, include_package_data=False)
