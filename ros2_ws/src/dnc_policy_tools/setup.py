from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dnc_policy_tools"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    # dnc_policy (the node and the runtime) comes from its own package; the bridge's
    # gymnasium and this project's sim from the workstation install (pip install .).
    install_requires=["setuptools", "numpy"],
    zip_safe=True,
    maintainer="dnc-policy developers",
    maintainer_email="dev@dnc-policy.invalid",
    description="Workstation tools for dnc_policy: sim bridge, sim-in-the-loop, benchmark",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sim_bridge = dnc_policy_tools.sim_bridge:main",
            "echo_node = dnc_policy_tools.bench:echo_main",
        ],
    },
)
