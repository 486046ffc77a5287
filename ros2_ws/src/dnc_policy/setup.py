from setuptools import find_packages, setup

PACKAGE = "dnc_policy"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    # onnxruntime or onnxruntime-gpu is installed by the user / image (they conflict).
    install_requires=["setuptools", "numpy"],
    zip_safe=True,
    maintainer="dnc-policy developers",
    maintainer_email="dev@dnc-policy.invalid",
    description="Stateful ONNX runtime (and ROS 2 node) for memory-augmented DNC policies",
    license="Apache-2.0",
    tests_require=["pytest"],
)
