"""Imitation learning: a short DAgger run improves on its start; model files are checked
against the task before flying; evaluation of a model file is deterministic."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lnn_drone.policy import ActionSpec, InputSpec, NetworkConfig  # noqa: E402
from lnn_drone.policy.model_file import ModelFileError, save_network  # noqa: E402
from lnn_drone.policy.network import build_policy_network  # noqa: E402
from lnn_drone.training.agents import PolicyAgent  # noqa: E402
from lnn_drone.training.dagger import DaggerTrainer, TrainConfig, imitation_loss, with_defaults  # noqa: E402
from lnn_drone.training.dataset import Dataset  # noqa: E402
from lnn_drone.training.evaluation import EvalSettings, evaluate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "hover.safetensors"


def tiny_config(**kw) -> TrainConfig:
    base = dict(iterations=1, expert_episodes=16, episodes_per_iteration=16, updates_first=120,
                updates_per_iteration=60, batch_size=16, window_steps=60, burn_in_steps=20, rollout_batch=8,
                check_episodes=4, final_eval_episodes=4, episode_s=4.0, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def heldout_loss(trainer: DaggerTrainer, net, dataset: Dataset) -> float:
    """The training objective (mixer-space weighted MSE) on held-out data."""
    rng = np.random.default_rng(0)
    inputs, labels, mask = dataset.chunks(32, 120, 0, rng)
    mix, w = trainer._loss_space()
    with torch.no_grad():
        pred, _ = net({n: torch.from_numpy(v) for n, v in inputs.items()},
                      torch.full(mask.shape, 1.0 / trainer.cfg.control_hz))
    return float(imitation_loss(pred, torch.from_numpy(labels), torch.from_numpy(mask), mix, w))


def test_imitation_loss_is_the_weighted_square_or_its_huber_form():
    """Squared error by default; with a Huber delta the same below it and linear above it, so a
    far-off label (a failing rollout's bang-bang command) pulls with a bounded force."""
    mix, w = torch.eye(4), torch.tensor([30.0, 30.0, 30.0, 10.0])
    labels = torch.zeros(1, 3, 4)
    pred = torch.tensor([[[0.001, -0.002, 0.0, 0.003], [0.5, 0.0, 0.0, 0.0], [0.0, 0.0, -0.2, 0.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])      # the third step is padding and must not count
    squared = (pred[0, :2] ** 2 * w).sum(-1).mean()
    assert float(imitation_loss(pred, labels, mask, mix, w)) == pytest.approx(float(squared), rel=1e-6)
    delta = 0.1
    small = float((pred[0, 0] ** 2 * w).sum())                # every weighted error below delta: quadratic
    r = 0.5 * 30.0 ** 0.5                                       # the second step's weighted error, above delta
    expected = 0.5 * (small + 2 * delta * (r - 0.5 * delta))
    assert float(imitation_loss(pred, labels, mask, mix, w, huber_delta=delta)) == pytest.approx(expected, rel=1e-5)
    assert expected < float(squared)
    with pytest.raises(ValueError, match="loss_huber_delta"):
        tiny_config(loss_huber_delta=-0.1).check()


@pytest.mark.slow
def test_short_dagger_run_improves_on_its_start(tmp_path):
    cfg = tiny_config()
    trainer = DaggerTrainer(cfg, tmp_path / "run", progress=False)
    try:
        # held-out expert data from other seeds, to score the starting and the trained network
        held = DaggerTrainer(tiny_config(seed=99), tmp_path / "held", progress=False)
        held.collect(0, 8, 0.0)
        trainer.collect(0, cfg.expert_episodes, 0.0)
        start_net = trainer.build_network()
        before = heldout_loss(trainer, start_net, held.dataset)
        trainer.dataset = Dataset(trainer.dataset.input_names)  # run() starts from an empty set
        trainer.net = None
        result = trainer.run()
        after = heldout_loss(trainer, trainer.net, held.dataset)
        held.close()
    finally:
        trainer.close()
    print(f"held-out imitation loss: start {before:.4g} -> trained {after:.4g}")
    assert after < 0.5 * before, (before, after)
    assert result["train_wall_s"] > 0
    log = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert log[0].startswith("iteration,") and len(log) == 3  # header + iterations 0 and 1
    assert (tmp_path / "run" / "checkpoint.safetensors").exists()
    # the weights the run ends with are those of the best-checked iteration
    from lnn_drone.policy.model_file import load_model

    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert result["selected_iteration"] == state["best"]["iteration"] in (0, 1)
    assert sorted(p.name for p in (tmp_path / "run" / "iterations").iterdir()) == ["it00.safetensors", "it01.safetensors"]
    best = load_model(tmp_path / "run" / "best.safetensors").tensors
    for name, value in trainer.net.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), best[name])
    # the same finished run, resumed with average_last = 2: it trains nothing and ends with the
    # mean of the last two iterations' weights
    averaged = DaggerTrainer(tiny_config(average_last=2), tmp_path / "run", progress=False)
    try:
        again = averaged.run(resume=True)
        kept = [load_model(tmp_path / "run" / "iterations" / f"it0{i}.safetensors").tensors for i in (0, 1)]
        assert again["averaged_iterations"] == [0, 1]
        for name, value in averaged.net.state_dict().items():
            np.testing.assert_allclose(value.numpy(), 0.5 * (kept[0][name] + kept[1][name]), rtol=0, atol=1e-7)
        assert any(not np.array_equal(kept[0][k], kept[1][k]) for k in kept[0])  # two different iterates
    finally:
        averaged.close()
    with pytest.raises(ValueError, match="average_last"):
        tiny_config(average_last=3).check()


@pytest.mark.slow
def test_run_resumes_and_refuses_another_configuration(tmp_path):
    cfg = tiny_config(iterations=0, updates_first=20)
    t = DaggerTrainer(cfg, tmp_path / "run", progress=False)
    t.run()
    t.close()
    more = tiny_config(iterations=0, updates_first=20)
    t2 = DaggerTrainer(more, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        t2.run()
    t2.run(resume=True)  # nothing left to do: returns at once with the saved state
    assert len(t2.dataset.episodes) == cfg.expert_episodes
    t2.close()
    # a run stopped while saving its next iteration: the dataset already holds that iteration's episodes and
    # the log its row, state.json does not; resuming trims both back to the saved iteration
    run = tmp_path / "run"
    grown = Dataset.load(run / "dataset.npz")
    for e in list(grown.episodes[:3]):
        grown.add(e)
    grown.save(run / "dataset.npz")
    log = (run / "train_log.csv").read_text()
    (run / "train_log.csv").write_text(log + "1" + log.splitlines()[-1][1:] + "\n")
    t3 = DaggerTrainer(more, run, progress=False)
    t3.run(resume=True)
    assert len(t3.dataset.episodes) == cfg.expert_episodes
    assert (run / "train_log.csv").read_text() == log
    t3.close()
    # a dataset cut short (a full disk) is named, not a BadZipFile from deep inside numpy
    data = (run / "dataset.npz").read_bytes()
    (run / "dataset.npz").write_bytes(data[: len(data) // 2])
    t4 = DaggerTrainer(more, run, progress=False)
    with pytest.raises(ValueError, match="damaged"):
        t4.run(resume=True)
    t4.close()
    (run / "dataset.npz").write_bytes(data)
    other = DaggerTrainer(tiny_config(iterations=0, updates_first=21), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        other.run(resume=True)
    other.close()
    # a run saved before a field existed ran with that field's default, and the selection rule
    # (which trains nothing) may change on resume; a non-default new value is still refused
    state_path = tmp_path / "run" / "state.json"
    state = json.loads(state_path.read_text())
    del state["config"]["thrust_reference_form"]
    state_path.write_text(json.dumps(state))
    again = DaggerTrainer(tiny_config(iterations=0, updates_first=20, select_best=False), tmp_path / "run", progress=False)
    again.run(resume=True)
    again.close()
    offset = DaggerTrainer(tiny_config(iterations=0, updates_first=20, thrust_reference_form="offset"), tmp_path / "run",
                           progress=False)
    with pytest.raises(ValueError, match="thrust_reference_form"):
        offset.run(resume=True)
    offset.close()


@pytest.mark.slow
def test_a_finished_run_is_extended_by_more_iterations(tmp_path):
    """The shipped visual model is its recipe's 16-iteration run resumed to 24 iterations: resuming
    with a larger ``iterations`` flies and trains only the new iterations, on top of the saved dataset
    and weights, and the learning rate of a new iteration follows the longer schedule."""
    run = tmp_path / "run"
    first = DaggerTrainer(tiny_config(iterations=0, updates_first=20, updates_per_iteration=10), run, progress=False)
    first.run()
    first.close()
    it00 = (run / "iterations" / "it00.safetensors").read_bytes()
    # a run saved before a knob existed (here a top-level and two nested ones) ran with its default
    state = json.loads((run / "state.json").read_text())
    del state["config"]["init_weights"], state["config"]["randomization"]["wind_prob"]
    del state["config"]["randomization"]["wind_speed_mps"]
    (run / "state.json").write_text(json.dumps(state))
    cfg = tiny_config(iterations=1, updates_first=20, updates_per_iteration=10)
    longer = DaggerTrainer(cfg, run, progress=False)
    try:
        longer.run(resume=True)
        assert len(longer.dataset.episodes) == cfg.expert_episodes + cfg.episodes_per_iteration
    finally:
        longer.close()
    assert (run / "iterations" / "it00.safetensors").read_bytes() == it00      # the saved iterate is kept
    assert (run / "iterations" / "it01.safetensors").exists()
    rows = (run / "train_log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    lr_1 = float(rows[2].split(",")[header.index("lr")])
    assert lr_1 == pytest.approx(cfg.lr * (cfg.lr_final / cfg.lr) ** (1 / cfg.iterations), rel=1e-2)
    state = json.loads((run / "state.json").read_text())
    assert state["iteration"] == 1 and state["config"]["iterations"] == 1
    shorter = DaggerTrainer(tiny_config(iterations=0, updates_first=20, updates_per_iteration=10), run, progress=False)
    with pytest.raises(ValueError, match="cannot shorten"):
        shorter.run(resume=True)
    shorter.close()


@pytest.mark.slow
def test_a_model_file_is_fine_tuned_from_its_own_weights_and_normalisation(tmp_path):
    """``init_weights``: after the expert iteration the network is the file's, not a fresh one built
    on the new data; a file whose inputs differ from the recipe's is refused before any training."""
    from lnn_drone.policy.model_file import load_model

    first = DaggerTrainer(tiny_config(iterations=0, updates_first=20), tmp_path / "first", progress=False)
    first.run()
    save_network(tmp_path / "start.safetensors", first.net)
    first.close()
    start = load_model(tmp_path / "start.safetensors")
    # a learning rate too small to move a weight: what iteration 0 ends with is the file itself
    tune = DaggerTrainer(tiny_config(iterations=0, updates_first=3, lr=1e-12, lr_final=1e-12, seed=11,
                                     init_weights=str(tmp_path / "start.safetensors")), tmp_path / "tune", progress=False)
    try:
        tune.run()
    finally:
        tune.close()
    tuned = load_model(tmp_path / "tune" / "iterations" / "it00.safetensors")
    assert tuned.config == start.config              # normalisation of the file, not of the new data
    for name, value in start.tensors.items():
        np.testing.assert_allclose(tuned.tensors[name], value, atol=1e-6)
    fresh = DaggerTrainer(tiny_config(iterations=0, updates_first=3, lr=1e-12, lr_final=1e-12, seed=11),
                          tmp_path / "fresh", progress=False)
    fresh.run()
    fresh.close()
    other = load_model(tmp_path / "fresh" / "iterations" / "it00.safetensors")
    assert any(not np.allclose(other.tensors[n], v, atol=1e-3) for n, v in start.tensors.items())
    wrong = DaggerTrainer(tiny_config(iterations=0, inputs=["imu", "goal_error"],
                                      init_weights=str(tmp_path / "start.safetensors")), tmp_path / "wrong", progress=False)
    try:
        with pytest.raises(ValueError, match="reads inputs"):
            wrong.run()
    finally:
        wrong.close()


def save_random_model(path, inputs, control_period=1 / 120) -> Path:
    cfg = NetworkConfig(inputs=inputs, action=ActionSpec("motors"), control_period=control_period)
    save_network(path, build_policy_network(cfg, seed=0))
    return Path(path)


def test_model_for_another_task_is_refused_with_a_clear_error(tmp_path):
    camera_model = save_random_model(tmp_path / "cam.safetensors", (
        InputSpec.vector("imu", 6), InputSpec("image", (64, 64, 3), "image")))
    settings = EvalSettings(tier="A30", episodes=1, control_hz=120.0)
    with pytest.raises(ModelFileError, match="image"):
        evaluate(PolicyAgent(camera_model), settings)
    odd = save_random_model(tmp_path / "odd.safetensors", (InputSpec.vector("wind_speed", 3),))
    with pytest.raises(ModelFileError, match="wind_speed"):
        evaluate(PolicyAgent(odd), settings)


def test_eval_cli_refuses_a_corrupt_model(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01 not a model")
    r = subprocess.run([sys.executable, "-m", "lnn_drone.cli", "eval", str(bad), "--episodes", "1", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "error" in r.stderr and r.stdout == ""


def test_model_evaluation_is_deterministic_for_a_seed(tmp_path):
    model = save_random_model(tmp_path / "m.safetensors", (
        InputSpec.vector("imu", 6), InputSpec.vector("goal_error", 11), InputSpec.vector("last_action", 4)))
    s = EvalSettings(tier="A30", episodes=2, seed=4, control_hz=120.0, episode_s=6.0)
    a = evaluate(PolicyAgent(model), s, record=True)
    b = evaluate(PolicyAgent(model), s, record=True)
    assert a.to_json_dict() == b.to_json_dict()
    for ra, rb in zip(a.results, b.results):
        assert np.array_equal(ra.trajectory["position"], rb.trajectory["position"])


@pytest.mark.skipif(not SHIPPED.exists(), reason="models/hover.safetensors not trained yet")
def test_shipped_hover_model_flies_a30():
    agent = PolicyAgent(SHIPPED)
    s = EvalSettings(tier="A30", episodes=30, seed=123, control_hz=agent.control_hz)
    summary = evaluate(agent, s)
    assert summary.success_rate >= 0.95, summary.to_json_dict()


@pytest.mark.skipif(not SHIPPED.exists(), reason="models/hover.safetensors not trained yet")
def test_shipped_model_metadata_carries_its_evaluation_and_size():
    r = subprocess.run([sys.executable, "-m", "lnn_drone.cli", "inspect", str(SHIPPED), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["cell"] == "cfc" and info["neurons"] <= 19 and info["params_total"] <= 2100
    assert info["action_mode"] == "motors"


def test_vehicle_classes_alternate_and_keep_their_relative_thrust_range(tmp_path):
    """Randomization across classes: env i flies vehicles[i % n]; a class's T/W range is the main
    range scaled by the ratio of nominal T/Ws (an absolute 1.3-3 would leave a 4.6 T/W quad with
    under two thirds of its thrust, a vehicle the evaluation never flies)."""
    from lnn_drone.training.dagger import class_randomization
    from lnn_drone.vehicle import load_vehicle

    cfg = tiny_config(vehicles=["crazyflie2", "quad250"], rollout_batch=4)
    trainer = DaggerTrainer(cfg, tmp_path / "run", progress=False)
    try:
        assert [e.unwrapped.nominal_vehicle.name for e in trainer.envs] == ["crazyflie2", "quad250"] * 2
    finally:
        trainer.close()
    ratio = load_vehicle("quad250").thrust_to_weight / load_vehicle("crazyflie2").thrust_to_weight
    scaled = class_randomization(cfg.randomization, "crazyflie2", "quad250")
    assert scaled.thrust_to_weight == pytest.approx([1.3 * ratio, 3.0 * ratio])
    assert class_randomization(cfg.randomization, "crazyflie2", "crazyflie2") is cfg.randomization
    assert cfg.randomization.thrust_to_weight == [1.3, 3.0], "the main recipe must not be modified"


def test_check_score_weighs_success_on_every_cell_against_precision():
    t = DaggerTrainer.__new__(DaggerTrainer)  # check_score reads no state beyond the class

    def check(a30_rmse, quad250):
        return {"A30": {"success_rate": 1.0, "rmse_m_median": a30_rmse}, "quad250": {"success_rate": quad250}}

    assert t.check_score(check(0.02, 1.0)) > t.check_score(check(0.01, 0.5)), "a failed cell outweighs 1 cm"
    assert t.check_score(check(0.02, 0.9)) > t.check_score(check(0.08, 1.0)), "6 cm of RMSE outweighs 10 % of a cell"
    assert t.check_score(check(0.01, 1.0)) > t.check_score(check(0.02, 1.0))
    crashed = {"A30": {"success_rate": 0.0, "rmse_m_median": None}}
    assert t.check_score(crashed) < t.check_score({"A30": {"success_rate": 0.0, "rmse_m_median": 0.9}})


def test_baseline_recipes_are_the_hover_recipe_with_another_core(tmp_path):
    """"Same data and budget": the baselines extend config/train_hover.yaml (or the visual recipe)
    and change only the name, the core and its network; a recipe that extends itself is refused."""
    from lnn_drone.commands.train_cmd import read_recipe

    hover = read_recipe(ROOT / "config" / "train_hover.yaml")
    for name in ("gru16", "mlp64"):
        recipe = read_recipe(ROOT / "config" / f"train_{name}.yaml")
        differs = {k for k in set(hover) | set(recipe) if hover.get(k) != recipe.get(k)}
        assert differs == {"name", "core", "network"}, (name, differs)
    visual = read_recipe(ROOT / "config" / "train_visual_target.yaml")
    for name in ("gru", "mlp"):
        recipe = read_recipe(ROOT / "config" / f"train_visual_target_{name}.yaml")
        differs = {k for k in set(visual) | set(recipe) if visual.get(k) != recipe.get(k)}
        assert differs == {"name", "core", "network"}, (name, differs)
    # the report's 'teacher' row flies the teacher the shipped hover students imitated
    from lnn_drone.training.report import HOVER_TEACHER_VERTICAL_SPEED_MIN, make_controller

    assert hover["teacher"] == "adaptive"
    assert hover.get("teacher_vertical_speed_min", 0.0) == HOVER_TEACHER_VERTICAL_SPEED_MIN
    assert make_controller("teacher")[0].vertical_speed_min == HOVER_TEACHER_VERTICAL_SPEED_MIN
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(ValueError, match="loops"):
        read_recipe(tmp_path / "a.yaml")


# each shipped visual model is its recipe's run extended by ``--resume --iterations 24`` (the recipe's comments)
EXTENDED_TO = 24


@pytest.mark.parametrize("model, recipe", [
    ("models/visual_target.safetensors", "config/train_visual_target.yaml"),
    ("models/baselines/visual_target_gru.safetensors", "config/train_visual_target_gru.yaml"),
    ("models/baselines/visual_target_mlp.safetensors", "config/train_visual_target_mlp.yaml"),
])
def test_shipped_visual_models_were_trained_by_the_recipe_that_names_them(model, recipe):
    """The README says each shipped visual model comes from its recipe: the training settings kept
    in the model file must equal the recipe's with the documented extension (``--iterations 24``),
    all but the run's name (the shipped model was trained as an experiment that became the recipe).
    A knob added after the model was trained is absent from its file; it matches only at its
    default, the value that keeps the old behaviour."""
    import argparse
    import dataclasses

    from lnn_drone.commands.train_cmd import load_train_config
    from lnn_drone.policy.model_file import load_model

    args = argparse.Namespace(config=str(ROOT / recipe), core=None, seed=None, iterations=EXTENDED_TO, final_episodes=None,
                              name=None)
    recipe_config = load_train_config(args)
    wanted = json.loads(json.dumps(dataclasses.asdict(recipe_config)))
    trained = load_model(ROOT / model).provenance["config"]
    trained = with_defaults(trained, json.loads(json.dumps(dataclasses.asdict(type(recipe_config)()))))
    differs = {k for k in set(wanted) | set(trained) if k != "name" and wanted.get(k) != trained.get(k)}
    assert not differs, {k: (wanted.get(k), trained.get(k)) for k in differs}


@pytest.mark.parametrize("recipe", sorted(p.relative_to(ROOT).as_posix() for p in
                                    [*(ROOT / "config").glob("train_*.yaml"), *(ROOT / "config" / "experiments").glob("*.yaml")]))
def test_every_shipped_recipe_is_a_valid_training_config(recipe):
    import argparse

    from lnn_drone.commands.train_cmd import load_train_config

    args = argparse.Namespace(config=str(ROOT / recipe), core=None, seed=None, iterations=EXTENDED_TO, final_episodes=None,
                              name=None)
    cfg = load_train_config(args)
    # experiments may stop after the expert iteration (a behaviour-cloning diagnosis); what ships trains by DAgger
    assert cfg.iterations >= (0 if recipe.startswith("config/experiments/") else 1) and cfg.inputs


def test_unknown_teacher_in_a_recipe_is_refused(tmp_path):
    with pytest.raises(ValueError, match="teacher"):
        DaggerTrainer(tiny_config(teacher="oracle"), tmp_path / "run", progress=False)


@pytest.mark.skipif(not SHIPPED.exists(), reason="models/hover.safetensors not trained yet")
def test_shipped_hover_model_rejects_a_constant_push():
    """Integral action: a constant push of 20 % of the weight leaves a steady offset of at most
    5 cm (issue 4's figure, here on 6 seeded episodes; the report flies 100). No episode crashes;
    a slow one may still be drifting back in its last 5 s, so success is held to a majority here,
    and the offset, the figure, to the goal (reports/hover/report.md has the 100-episode cell)."""
    agent = PolicyAgent(SHIPPED)
    assert "goal_error_integral" in agent.model.input_names
    s = EvalSettings(tier="A30", episodes=6, seed=5, push_frac=0.2, control_hz=agent.control_hz)
    summary = evaluate(agent, s)
    assert summary.crash_rate == 0.0 and summary.success_rate >= 0.5, summary.to_json_dict()
    assert summary.steady_offset_m <= 0.05, summary.to_json_dict()
