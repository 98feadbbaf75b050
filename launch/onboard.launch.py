"""Onboard: the liquid policy (managed lifecycle node by default) next to the flight-controller
bridge; no simulator. The policy needs only numpy, the model file and ROS 2.

    ros2 launch lnn_drone onboard.launch.py model:=/path/to/hover.safetensors fc_config:=my_fc.yaml

The lifecycle policy starts unconfigured: `ros2 lifecycle set /policy configure`, then
`activate` (or pass managed:=false for the plain node that flies at once).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("lnn_drone")
    namespace = LaunchConfiguration("namespace")
    # real time on a non-real-time OS: allow a few control periods of transport jitter before
    # the input-timeout failsafe (lockstep simulation keeps the config file's tighter value)
    policy_params = [LaunchConfiguration("policy_config"),
                     {"model": LaunchConfiguration("model"), "use_sim_time": LaunchConfiguration("use_sim_time"),
                      "input_timeout_periods": 5.0}]
    managed = LaunchConfiguration("managed")
    return LaunchDescription([
        DeclareLaunchArgument("model", default_value=PathJoinSubstitution([share, "models", "hover.safetensors"]),
                              description="policy model file (.safetensors)"),
        DeclareLaunchArgument("policy_config", default_value=PathJoinSubstitution([share, "config", "policy_node.yaml"]),
                              description="policy node parameter file"),
        DeclareLaunchArgument("fc_config", default_value=PathJoinSubstitution([share, "config", "fc_bridge_node.yaml"]),
                              description="flight-controller bridge parameter file (backend, device, timeouts)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of this drone's topics and nodes"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="true only when a simulator publishes /clock"),
        DeclareLaunchArgument("managed", default_value="true", description="lifecycle (managed) policy node"),
        Node(package="lnn_drone", executable="fc_bridge_node", name="fc_bridge", namespace=namespace, output="screen",
             parameters=[LaunchConfiguration("fc_config"), {"use_sim_time": LaunchConfiguration("use_sim_time")}]),
        LifecycleNode(package="lnn_drone", executable="policy_lifecycle_node", name="policy", namespace=namespace,
                      output="screen", parameters=policy_params, condition=IfCondition(managed)),
        Node(package="lnn_drone", executable="policy_node", name="policy", namespace=namespace, output="screen",
             parameters=policy_params, condition=UnlessCondition(managed)),
    ])
