"""The evaluation report: every controller on the same seeded cells, a Markdown page with plots."""
from __future__ import annotations


import pytest

from lnn_drone.training.report import MatrixSpec, cells, run_matrix, verdict_lines, write_report

SMALL = MatrixSpec(episodes=2, tiers=("A30",), tw_grid=(1.5, 3.0), latency_grid_ms=(0.0, 20.0))


def test_matrix_cells_cover_tiers_grid_push_and_vehicle():
    names = [n for n, _ in cells(MatrixSpec())]
    assert names[:3] == ["A30", "A45", "A90"]
    assert len([n for n in names if n.startswith("A30_tw")]) == 12
    assert "A30_push0.2" in names and "A30_quad250" in names


def test_report_page_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    results = run_matrix(["expert"], SMALL, progress=False, record_tier="A30")
    cell = results["controllers"]["expert"]["cells"]["A30_tw1.5_lat20ms"]
    assert cell["episodes"] == 2 and cell["settings"]["latency_ms"] == 20.0
    page = write_report(results, tmp_path)
    text = page.read_text()
    assert "| expert (privileged) |" in text and "T/W 1.5, 20 ms" in text
    for png in ("robustness.png", "trajectories.png"):
        assert (tmp_path / png).stat().st_size > 1000
    assert (tmp_path / "results.json").exists()


def test_verdict_names_the_winner_and_ties():
    def controller(rmse, success):
        base = {"success_rate": success, "rmse_m_median": rmse, "steady_offset_m": rmse}
        c = {k: dict(base) for k in ("A45", "A90", "A30_push0.2", "A30_quad250")}
        c.update({n: dict(base) for n, _ in cells(MatrixSpec()) if n.startswith("A30_tw")})
        return {"cells": c}

    results = {"spec": MatrixSpec().__dict__, "controllers": {"a.safetensors": controller(0.1, 1.0),
                                                               "b.safetensors": controller(0.2, 1.0)}}
    text = "\n".join(verdict_lines(results))
    assert "**A45 RMSE (last 5 s)**: best a" in text
    assert "**A45 success**: tie: a, b" in text
