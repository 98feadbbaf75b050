"""The deployment path (Policy, model file, numpy runtime, specs, features) imports neither torch
nor pybullet: proved in a fresh interpreter that loads a model and runs steps."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from lnn_drone.policy.config import NetworkConfig
from lnn_drone.policy.model_file import save_network
from lnn_drone.policy.network import build_policy_network
from lnn_drone.policy.spec import InputSpec

ROOT = Path(__file__).resolve().parents[1]


def test_deployment_path_is_torch_free(tmp_path):
    cfg = NetworkConfig(inputs=(InputSpec.vector("imu", 6), InputSpec.vector("odom", 13), InputSpec.image("image", 32, 32)),
                        image_features=8)
    path = save_network(tmp_path / "m.safetensors", build_policy_network(cfg, seed=0))
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import lnn_drone.policy
        from lnn_drone.policy import Policy, model_file, runtime_numpy, spec, features, policy
        import lnn_drone.liquid
        from lnn_drone.liquid import wiring
        p = Policy.load({str(path)!r}, available_observations=["imu", "odom", "image"])
        obs = {{"imu": np.zeros(6), "odom": np.zeros(13), "image": np.zeros((32, 32, 3), np.uint8)}}
        for _ in range(3):
            cmd = p.step(obs, 0.01)
        print(json.dumps({{"cmd": cmd.tolist(), "modules": sorted(sys.modules)}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["cmd"]) == 4
    heavy = [m for m in result["modules"] if m.split(".")[0] in ("torch", "pybullet", "onnx", "onnxruntime", "rclpy")]
    assert heavy == [], heavy
