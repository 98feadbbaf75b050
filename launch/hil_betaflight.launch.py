"""Hardware-in-the-loop with the real Betaflight firmware: the Betaflight SITL (provisioned,
the firmware's own ports), the HIL sim node (PyBullet vehicle <-> firmware over UDP), the fc
bridge (backend betaflight: CTBR -> RC over MSP, the FC's IMU -> imu) and the liquid CTBR policy.

    ros2 launch lnn_drone hil_betaflight.launch.py [model:=...] [namespace:=...]

Without a ROS 2 install, `lnn-drone fly --launch hil_betaflight` starts the same graph (and gives
the SITL its own ports, so several runs can share a host). The nodes start after the firmware
has booted and saved its settings (``sitl_startup_s``), since the firmware serves one MSP client.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, TimerAction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackagePrefix, FindPackageShare


def generate_launch_description():
    share = FindPackageShare("lnn_drone")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    sitl = ExecuteProcess(cmd=[PathJoinSubstitution([FindPackagePrefix("lnn_drone"), "lib", "lnn_drone", "betaflight_sitl"])],
                          output="screen")
    nodes = [
        Node(package="lnn_drone", executable="hil_sim_node", name="hil_sim", namespace=namespace, output="screen",
             parameters=[LaunchConfiguration("hil_config")]),
        Node(package="lnn_drone", executable="fc_bridge_node", name="fc_bridge", namespace=namespace, output="screen",
             parameters=[LaunchConfiguration("fc_config"), {"use_sim_time": use_sim_time}]),
        Node(package="lnn_drone", executable="policy_node", name="policy", namespace=namespace, output="screen",
             parameters=[LaunchConfiguration("policy_config"),
                         {"model": LaunchConfiguration("model"), "use_sim_time": use_sim_time, "sync": "latest",
                          "input_timeout_periods": 15.0}]),  # DDS + MSP jitter between four processes
    ]
    return LaunchDescription([
        DeclareLaunchArgument("model", default_value=PathJoinSubstitution([share, "models", "hover_ctbr.safetensors"]),
                              description="CTBR policy model file (.safetensors)"),
        DeclareLaunchArgument("hil_config", default_value=PathJoinSubstitution([share, "config", "hil_sim_node.yaml"]),
                              description="HIL sim node parameter file (SITL ports, vehicle, episode)"),
        DeclareLaunchArgument("fc_config", default_value=PathJoinSubstitution([share, "config", "hil_betaflight.yaml"]),
                              description="fc bridge parameter file (backend betaflight, MSP device)"),
        DeclareLaunchArgument("policy_config", default_value=PathJoinSubstitution([share, "config", "policy_node.yaml"]),
                              description="policy node parameter file"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of this drone's topics and nodes"),
        DeclareLaunchArgument("use_sim_time", default_value="true", description="follow the HIL sim node's /clock"),
        DeclareLaunchArgument("sitl_startup_s", default_value="10.0",
                              description="wait this long for the firmware to boot and save its settings"),
        sitl,
        TimerAction(period=LaunchConfiguration("sitl_startup_s"), actions=nodes),
    ])
