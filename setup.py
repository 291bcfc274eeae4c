"""ament_python package: the clap_core library and the clap_ros node in one distribution."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "clap_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["clap_core", "clap_core.*", "clap_ros", "clap_ros.*"]),
    package_data={"clap_core": ["weights/*/*.json", "weights/*/*.safetensors", "weights/*/*.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="clap_ros maintainers",
    maintainer_email="maintainers@clap-ros.dev",
    description="Hear natural-language predicates: CLAP audio-text scoring as ROS 2 topics.",
    license="MIT",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "clap-classify = clap_core.cli.classify:main",
            "clap-eval = clap_core.cli.evaluate:main",
            "clap-weights = clap_core.cli.weights:main",
            "clap-predicates = clap_ros.predicates_cli:main",
            "clap-predicate-node = clap_ros.predicate_node:main",
        ],
    },
)
