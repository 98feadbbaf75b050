"""Hardware-in-the-loop: the PyBullet vehicle, the real Betaflight firmware (SITL) and a
controller in one loop, exactly where a real board sits between the motors and the onboard
computer. Uses sim, fc, policy and training (for the evaluation protocol); no rclpy."""
