"""Betaflight: the MSP backend (real boards over serial, the SITL over TCP) and the SITL
process manager (its own working directory and ports per instance). No rclpy here."""
