"""Per-step inference time of the policy networks: numpy vs torch vs onnxruntime, batch 1.

Prints one ``name=value`` line per figure (times in microseconds per control step, median and
99th percentile), parameter counts, and, last, the same-run ratio
``cfc_ncp19_over_gru16_numpy`` (goal <= 1.5: a 16-unit GRU is the size of the best-known small
learned quadrotor policy). Further goals: ``numpy_camera_policy_us_median`` and
``policy_step_visual_target_model_us_median`` (the shipped IMU + camera model, full
``Policy.step``) <= 2000.

What is timed: one network step on a 22-value input (imu 6 + a 16-value state vector) including input
normalisation and the head, from already-extracted features (numpy: ``NumpyRuntime.step``;
torch: ``PolicyNetwork.step`` under ``inference_mode``; onnxruntime: ``InferenceSession.run``
of the exported single-step graph). ``policy_step_*`` adds the full ``Policy.step`` path
(observation dict -> feature extraction and checks -> runtime). One thread everywhere.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lnn_drone.policy.config import NetworkConfig  # noqa: E402
from lnn_drone.policy.export_onnx import export_onnx  # noqa: E402
from lnn_drone.policy.model_file import load_model, save_network  # noqa: E402
from lnn_drone.policy.network import build_policy_network  # noqa: E402
from lnn_drone.policy.policy import Policy  # noqa: E402
from lnn_drone.policy.runtime_numpy import NumpyRuntime  # noqa: E402
from lnn_drone.policy.spec import InputSpec  # noqa: E402

VECTOR = (InputSpec.vector("imu", 6), InputSpec.vector("state16", 16))
CONFIGS = {
    "cfc_ncp19": NetworkConfig(inputs=VECTOR, core="cfc"),
    "ltc_ncp19": NetworkConfig(inputs=VECTOR, core="ltc", ltc_ode_unfolds=6),
    "gru16": NetworkConfig(inputs=VECTOR, core="gru", gru_units=16),
    "mlp64x64": NetworkConfig(inputs=VECTOR, core="mlp", mlp_hidden=(64, 64), mlp_history=3),
    "camera_policy": NetworkConfig(inputs=VECTOR + (InputSpec.image("image", 64, 64),), core="cfc"),
}


def timed(fn, n: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    samples = np.empty(n)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn()
        samples[i] = clock() - t0
    return float(np.median(samples) / 1e3), float(np.percentile(samples, 99) / 1e3)


def observation(cfg: NetworkConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    obs = {}
    for s in cfg.inputs:
        if s.kind == "image":
            obs[s.name] = rng.integers(0, 256, s.shape, dtype=np.uint8)
        else:
            obs[s.name] = rng.normal(size=s.dim).astype(np.float32)
    return obs


def emit(name: str, value) -> None:
    print(f"{name}={value:.1f}" if isinstance(value, float) else f"{name}={value}", flush=True)


def main() -> int:
    torch.set_num_threads(1)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    rng = np.random.default_rng(0)
    dt = 0.01
    medians: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in CONFIGS.items():
            camera = name == "camera_policy"
            n = 300 if camera else 3000
            net = build_policy_network(cfg, seed=0).eval()
            path = Path(tmp) / f"{name}.safetensors"
            save_network(path, net)
            model = load_model(path)
            counts = model.param_counts()
            emit(f"params_{name}", counts["total"])
            emit(f"params_liquid_{name}", counts["liquid"])
            obs = observation(cfg, rng)

            rt = NumpyRuntime(model)
            med, p99 = timed(lambda: rt.step(obs, dt), n, 100)
            medians[f"numpy_{name}"] = med
            emit(f"numpy_{name}_us_median", med)
            emit(f"numpy_{name}_us_p99", p99)

            policy = Policy(model)
            med, p99 = timed(lambda: policy.step(obs, dt), n, 100)
            emit(f"policy_step_{name}_us_median", med)

            tin = {k: torch.from_numpy(v)[None] for k, v in obs.items()}
            tstate = [net.initial_state(1)]
            tdt = torch.tensor([dt])

            def torch_step():
                with torch.inference_mode():
                    _, tstate[0] = net.step(tin, tstate[0], tdt)

            med, p99 = timed(torch_step, n // 3, 30)
            emit(f"torch_{name}_us_median", med)
            emit(f"torch_{name}_us_p99", p99)

            onnx_path = export_onnx(net, Path(tmp) / f"{name}.onnx")
            sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            feeds = {k: v[None] for k, v in obs.items()}
            feeds["dt"] = np.array([dt], np.float32)
            feeds["state"] = np.zeros((1, cfg.state_size), np.float32)

            def ort_step():
                feeds["state"] = sess.run(None, feeds)[1]

            med, p99 = timed(ort_step, n // 3, 30)
            emit(f"onnxruntime_{name}_us_median", med)
            emit(f"onnxruntime_{name}_us_p99", p99)
    shipped = Path(__file__).resolve().parents[1] / "models" / "visual_target.safetensors"
    if shipped.exists():
        # the shipped IMU + camera policy through the full deployment path (Policy.step: feature
        # extraction and checks, conv encoder, CfC core, head) on a 64x48 frame
        policy = Policy(load_model(shipped))
        obs = {"imu": rng.normal(size=6).astype(np.float32), "attitude": np.array([0, 0, 0, 1], np.float32),
               "image": rng.integers(0, 256, policy.model.config.image_input.shape, dtype=np.uint8)}
        med, p99 = timed(lambda: policy.step(obs, policy.control_period), 300, 50)
        emit("policy_step_visual_target_model_us_median", med)
        emit("policy_step_visual_target_model_us_p99", p99)
    emit("cfc_ncp19_over_gru16_numpy", f"{medians['numpy_cfc_ncp19'] / medians['numpy_gru16']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
