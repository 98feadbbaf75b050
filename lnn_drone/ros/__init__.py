"""ROS 2 adapters: the only package that imports rclpy.

Nodes are thin: the flight logic lives in the ROS-free core (``sim``, ``policy``, ``control``,
``fc``) and in the small rclpy-free helpers here (``env``, ``node_config``, ``policy_logic``,
``report``), so those import without a ROS install. Modules that need rclpy import it at the top
and are only imported by executables and tests that need ROS.
"""
