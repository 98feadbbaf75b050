"""lnn_drone: fly quadrotors with liquid neural networks.

Sub-packages: ``sim`` (PyBullet world), ``liquid`` (CfC/LTC cells), ``policy`` (model file,
runtimes), ``control`` (classical experts), ``training``, ``fc`` (flight-controller
backends) and ``ros`` (the only one that imports rclpy).
"""
__version__ = "0.1.0"
