"""Simulation: the PyBullet sim node and the liquid policy node, in lockstep by default.

    ros2 launch lnn_drone sim.launch.py model:=/path/to/hover.safetensors namespace:=drone1

Without a ROS 2 install, `lnn-drone fly --launch sim` starts the same executables with the same
parameter files. Several drones side by side: one launch per namespace (topics are relative).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("lnn_drone")
    model = LaunchConfiguration("model")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    return LaunchDescription([
        DeclareLaunchArgument("model", default_value=PathJoinSubstitution([share, "models", "hover.safetensors"]),
                              description="policy model file (.safetensors)"),
        DeclareLaunchArgument("sim_config", default_value=PathJoinSubstitution([share, "config", "sim_node.yaml"]),
                              description="sim node parameter file"),
        DeclareLaunchArgument("policy_config", default_value=PathJoinSubstitution([share, "config", "policy_node.yaml"]),
                              description="policy node parameter file"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of this drone's topics and nodes"),
        DeclareLaunchArgument("use_sim_time", default_value="true", description="policy follows the sim's /clock"),
        Node(package="lnn_drone", executable="sim_node", name="sim", namespace=namespace, output="screen",
             parameters=[LaunchConfiguration("sim_config")]),
        Node(package="lnn_drone", executable="policy_node", name="policy", namespace=namespace, output="screen",
             parameters=[LaunchConfiguration("policy_config"), {"model": model, "use_sim_time": use_sim_time}]),
    ])
