"""``lnn-drone inspect`` and ``lnn-drone export`` (through lnn_drone.cli.main and a subprocess)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lnn_drone.cli import main
from lnn_drone.policy.config import NetworkConfig
from lnn_drone.policy.model_file import save_network
from lnn_drone.policy.network import build_policy_network
from lnn_drone.policy.spec import InputSpec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    cfg = NetworkConfig(inputs=(InputSpec.vector("imu", 6), InputSpec.vector("goal_error", 16)))
    path = tmp_path_factory.mktemp("cli") / "hover.safetensors"
    save_network(path, build_policy_network(cfg, seed=0), provenance={"run": "cli-test"})
    return path


def test_inspect_json(model_path, capsys, tmp_path):
    png = tmp_path / "wiring.png"
    assert main(["inspect", str(model_path), "--json", "--plot-wiring", str(png)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cell"] == "cfc" and info["neurons"] == 19 and info["action_mode"] == "motors"
    assert info["params_total"] <= 2100 and 0 < info["params_liquid"] <= info["params_total"]
    assert [i["name"] for i in info["inputs"]] == ["imu", "goal_error"]
    assert info["provenance"] == {"run": "cli-test"}
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_inspect_text_subprocess(model_path):
    out = subprocess.run([sys.executable, "-m", "lnn_drone.cli", "inspect", str(model_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "cfc on a ncp wiring: 19 neurons" in out.stdout and "parameters" in out.stdout


def test_bad_model_file(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00")
    assert main(["inspect", str(bad)]) == 1
    assert "TruncatedModelError" in capsys.readouterr().err
    assert main(["export", str(bad), "--onnx", str(tmp_path / "x.onnx")]) == 1
    assert "TruncatedModelError" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_export(model_path, tmp_path, capsys):
    pytest.importorskip("onnxscript")
    out = tmp_path / "hover.onnx"
    assert main(["export", str(model_path), "--onnx", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.stat().st_size > 0 and "max abs diff" in text
