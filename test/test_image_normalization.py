"""Per-frame image normalisation: the encoder is blind to exposure, contrast and white balance."""
import numpy as np
import pytest
import torch

from lnn_drone.policy.config import ConfigError, NetworkConfig
from lnn_drone.policy.model_file import load_model, save_network
from lnn_drone.policy.network import build_policy_network
from lnn_drone.policy.runtime_numpy import NumpyRuntime
from lnn_drone.policy.spec import ActionSpec, InputSpec

CAM = InputSpec.image("image", 24, 32, mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3])
IMU = InputSpec.vector("imu_accel", 3)


def _net(norm: str, opponent: str = "none"):
    cfg = NetworkConfig(inputs=(IMU, CAM), action=ActionSpec("ctbr", max_rate=5.0), image_normalization=norm,
                        image_opponent=opponent,
                        image_channels=(4, 6), image_kernels=(3, 3), image_strides=(2, 2), image_features=8)
    return build_policy_network(cfg, seed=0).eval()


def _frame(seed=0):
    # values in 60-180 so that the affine changes below stay inside 0-255 (no clipping)
    return np.random.default_rng(seed).integers(60, 181, (24, 32, 3)).astype(np.float64)


def _encode(net, img: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net.image_encoder(torch.from_numpy(np.rint(img).astype(np.uint8))[None]).numpy()[0]


def _relative_change(net, img, changed) -> float:
    """How far a change moves the encoding, against how far another frame does."""
    base = _encode(net, img)
    return float(np.abs(_encode(net, changed) - base).max() / np.abs(_encode(net, _frame(1)) - base).max())


def test_per_frame_cancels_per_channel_gain_and_offset():
    img = _frame()
    shifted = img * np.array([1.15, 0.85, 1.1]) + np.array([10.0, -20.0, 5.0])   # white balance + exposure
    low_contrast = 0.5 * img + 60.0                                                # contrast halved, brighter
    net = _net("per_frame")
    # only the rounding to uint8 differs (half a grey level of 0-255, against a std of ~35)
    assert _relative_change(net, img, shifted) < 0.05
    assert _relative_change(net, img, low_contrast) < 0.05
    # the dataset normalisation sees the same changes: the invariance is the option's doing
    ds = _net("dataset")
    assert _relative_change(ds, img, shifted) > 0.2
    assert _relative_change(ds, img, low_contrast) > 0.2


def test_per_frame_flat_frame_stays_finite_and_equals_black():
    net = _net("per_frame")
    grey, black = np.full((24, 32, 3), 128.0), np.zeros((24, 32, 3))
    assert np.isfinite(_encode(net, grey)).all()
    np.testing.assert_allclose(_encode(net, grey), _encode(net, black), atol=1e-6)


def test_per_frame_round_trips_through_the_model_file(tmp_path):
    net = _net("per_frame")
    model = load_model(save_network(tmp_path / "m.safetensors", net))
    assert model.config.image_normalization == "per_frame"
    rt = NumpyRuntime(model)
    img = _frame(3).astype(np.uint8)
    out = rt.step({"imu_accel": np.zeros(3, np.float32), "image": img}, 1 / 30)
    with torch.no_grad():
        ref, _ = net.step({"imu_accel": torch.zeros(1, 3), "image": torch.from_numpy(img)[None]},
                          net.initial_state(1), torch.tensor([1 / 30]))
    np.testing.assert_allclose(out, ref[0].numpy(), atol=1e-5)


def test_old_files_default_to_dataset_normalization_and_bad_names_are_refused():
    assert NetworkConfig(inputs=(IMU, CAM)).image_normalization == "dataset"
    with pytest.raises(ConfigError, match="image_normalization"):
        NetworkConfig(inputs=(IMU, CAM), image_normalization="per_image")


def _red_channel(net, img: np.ndarray) -> np.ndarray:
    """The opponent channel the first conv reads, through a hook on that conv's input."""
    seen = {}
    hook = net.image_encoder.convs[0].register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    _encode(net, img)
    hook.remove()
    assert seen["x"].shape[1] == 4
    return seen["x"][0, 3].numpy()


def test_red_opponent_marks_red_pixels_under_any_exposure():
    net = _net("per_frame", "red")
    img = np.zeros((24, 32, 3))
    img[:, :8] = (200, 30, 20)      # the target's red
    img[:, 8:16] = (200, 200, 200)  # white
    img[:, 16:24] = (40, 160, 60)   # green
    img[:, 24:] = (180, 120, 110)   # a pale, reddish brown: red, but far less so
    red = _red_channel(net, img)
    np.testing.assert_allclose(red[:, :8], (200 - 30) / (250 + 25.5), rtol=1e-5)
    assert np.abs(red[:, 8:16]).max() < 1e-6
    assert red[:, 16:24].max() < -0.3
    assert 0.0 < red[:, 24:].max() < 0.5 * red[:, :8].min()
    # the same scene at half the exposure: the red stays red (it is a ratio, up to the floor)
    dim = _red_channel(net, img * 0.5)
    assert dim[:, :8].min() > 0.8 * red[:, :8].min() and dim[:, 24:].max() < 0.5 * dim[:, :8].min()
    # the channel is an option: without it the first conv reads RGB only
    rgb_only = _net("per_frame")
    assert rgb_only.image_encoder.convs[0].in_channels == 3


def test_red_opponent_round_trips_and_bad_names_are_refused(tmp_path):
    net = _net("per_frame", "red")
    model = load_model(save_network(tmp_path / "m.safetensors", net))
    assert model.config.image_opponent == "red" and model.config.image_input_channels == 4
    assert NetworkConfig(inputs=(IMU, CAM)).image_opponent == "none"
    with pytest.raises(ConfigError, match="image_opponent"):
        NetworkConfig(inputs=(IMU, CAM), image_opponent="blue")


def test_normalized_red_keeps_the_per_frame_invariance_the_raw_red_loses():
    """Why ``red_normalized`` exists: the raw chroma changes with contrast and white balance
    (measured: low contrast 93 -> 30 % success), the opponent of the normalised channels does not."""
    img = _frame()
    shifted = img * np.array([1.15, 0.85, 1.1]) + np.array([10.0, -20.0, 5.0])
    low_contrast = 0.5 * img + 60.0
    net = _net("per_frame", "red_normalized")
    assert net.image_encoder.convs[0].in_channels == 4
    assert _relative_change(net, img, shifted) < 0.05
    assert _relative_change(net, img, low_contrast) < 0.05

    def change(n, changed):  # mean change of the red channel, against its mean size
        before = _red_channel(n, img)
        return float(np.abs(_red_channel(n, np.rint(changed)) - before).mean() / np.abs(before).mean())

    raw = _net("per_frame", "red")
    for changed in (shifted, low_contrast):
        assert change(net, changed) < 0.1     # only the rounding to uint8 (measured 0.04 and 0.01)
        assert change(raw, changed) > 0.3     # the raw chroma moves (measured 0.51 and 0.67)
    # and it still marks the red pixels of a grey scene
    scene = np.full((24, 32, 3), 150.0)
    scene[:, :4] = (200, 30, 20)
    marked = _red_channel(net, scene)
    assert marked[:, :4].min() > 4.0 * np.abs(marked[:, 4:]).max()   # measured 5.2 against 0.74
