"""The packages of the workstation distribution (its metadata is in pyproject.toml).

``pip install .`` gives ``dnc_core``, ``sim``, ``training`` and ``export`` with their
configs, and the Python packages of the two ROS packages, taken from their sources in
``ros2_ws/src`` so that each is written once: ``dnc_policy`` (the ONNX contract, the
runtime, the node; export and evaluation use the first two) and ``dnc_policy_tools``
(the sim bridge, sim-in-the-loop, the node's benchmark). The ROS packages install on
their own as well (``pip install ros2_ws/src/dnc_policy`` or colcon); use one or the
other in an environment, not both. A tree without ``ros2_ws`` (docker/Dockerfile.sim copies only
``sim/``) gives just the packages that are present.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
# The ROS packages' Python packages: the robot side, and the workstation tools around it
# (the sim bridge, sim-in-the-loop, the node's benchmark) that training.demo and the
# tests run.
ROS_PACKAGES = {"dnc_policy": "ros2_ws/src/dnc_policy/dnc_policy",
                "dnc_policy_tools": "ros2_ws/src/dnc_policy_tools/dnc_policy_tools"}

packages = find_packages(include=["dnc_core*", "training*", "export*", "sim*"])
package_dir = {}
for name, path in ROS_PACKAGES.items():
    if (ROOT / path / "__init__.py").is_file():
        packages.append(name)
        package_dir[name] = path

setup(packages=packages, package_dir=package_dir,
      package_data={"training": ["configs/*.yaml"]}, include_package_data=False)
