from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dnc_policy"

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
    # onnxruntime or onnxruntime-gpu, as an extra: the two conflict, and a Jetson image
    # installs its own onnxruntime-gpu build (docker/Dockerfile.jetson).
    install_requires=["setuptools", "numpy"],
    extras_require={"cpu": ["onnxruntime>=1.18"], "gpu": ["onnxruntime-gpu>=1.18"]},
    zip_safe=True,
    maintainer="dnc-policy developers",
    maintainer_email="dev@dnc-policy.invalid",
    description="Stateful ONNX runtime (and ROS 2 node) for memory-augmented DNC policies",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy_node = dnc_policy.node:main",
        ],
    },
)
