"""A tiny study, end to end through the command line (one seed, 284 mock MNIST-1D examples:
28 held out for validation, 256 trained on).

One subprocess run of `python -m tfgap.recipes.study` feeds every test here:
the files it must write, the table (validation and test accuracy) recomputed
from the per-run `result.json` files the trainer wrote, and the regimes'
resolved configs and step counts against closed forms.
"""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tfgap.study import REGIMES, slug

B_S, B_L, B_G, EPOCHS = 16, 128, 16, 2
MOCK = 284  # mock examples of the training split; a tenth (floor) is the validation split
V = MOCK // 10
N = MOCK - V  # 256 training examples: whole batches of B_S and B_L
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    cmd = [sys.executable, "-m", "tfgap.recipes.study", "--seeds=1", f"--epochs={EPOCHS}",
           "--mock_data", f"--mock_examples={MOCK}", f"--small_batch_size={B_S}",
           f"--large_batch_size={B_L}", f"--ghost_batch_size={B_G}", "--lr=0.05",
           "--lr_boundaries=1", "--sharpness_examples=64", "--interpolation_points=5",
           f"--output_dir={out / 'study'}", f"--export_dir={out / 'savedmodels' / 'ra'}"]
    proc = _run(cmd)
    with open(out / "study" / "results.json") as f:
        results = json.load(f)
    return dict(out=out, dir=out / "study", stdout=proc.stdout, results=results, cmd=cmd)


def _run(cmd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _run_result(study, name):
    with open(study["dir"] / "runs" / slug(name) / "seed0" / "result.json") as f:
        return json.load(f)


def test_writes_all_regimes_table_and_figures(study):
    rows = study["results"]["regimes"]
    assert [r["name"] for r in rows] == list(REGIMES)
    for row in rows:
        for key in ("name", "validation_accuracy_mean", "validation_accuracy_std",
                    "test_accuracy_mean", "test_accuracy_std", "train_accuracy_mean",
                    "updates", "sharpness", "diffusion_slope", "wall_time_mean",
                    "wall_time_std", "weight_distance_mean", "weight_distance_std"):
            assert row[key] is not None, (row["name"], key)
    for png in ("test_error.png", "weight_distance.png", "interpolation.png"):
        with open(study["dir"] / png, "rb") as f:
            assert f.read(8) == PNG_MAGIC, png
        assert png in study["results"]["figures"]
    with open(study["dir"] / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["name"] for r in csv_rows] == list(REGIMES)
    for row, csv_row in zip(rows, csv_rows):
        assert float(csv_row["validation_accuracy_mean"]) == row["validation_accuracy_mean"]
        assert float(csv_row["test_accuracy_mean"]) == row["test_accuracy_mean"]
    for name in REGIMES:  # a progress line per run and a table row per regime
        assert f"{name} seed 0 [" in study["stdout"]
    assert "val acc %" in study["stdout"] and "test acc %" in study["stdout"]
    interp = study["results"]["interpolation"]
    assert len(interp["alphas"]) == 5 and len(interp["test_accuracy"]) == 5


def test_exports_the_remedied_model(study):
    export = study["out"] / "savedmodels" / "ra"
    assert (export / "saved_model.pb").exists()
    assert _run_result(study, "LB+LR+GBN+RA")["export_dir"]
    assert not _run_result(study, "SB")["export_dir"]


def test_table_is_computed_from_the_runs(study):
    for row in study["results"]["regimes"]:
        result = _run_result(study, row["name"])
        assert (result["num_train_examples"], result["num_validation_examples"]) == (N, V)
        assert row["validation_examples"] == V
        assert row["validation_accuracy_mean"] == result["validation"]["accuracy"]
        assert row["per_seed"]["validation_accuracy"] == [result["validation"]["accuracy"]]
        # ... which is the last evaluation of the run, on V examples (a multiple of 1 / V).
        assert result["history"][-1]["validation_accuracy"] == result["validation"]["accuracy"]
        correct = result["validation"]["accuracy"] * V
        assert correct == pytest.approx(round(correct), abs=1e-4)
        assert row["test_accuracy_mean"] == result["test"]["accuracy"]
        assert row["train_accuracy_mean"] == result["train"]["accuracy"]
        assert row["updates"] == result["global_step"]
        assert row["wall_time_mean"] == result["wall_time"]
        assert row["weight_distance_mean"] == result["weight_distance"]
        # The diffusion slope, refitted here by least squares on (log t, distance).
        last = max(p[0] for p in result["distance_record"])
        pts = np.array([p for p in result["distance_record"] if p[0] >= max(1, last / 10)],
                       np.float64)
        x, y = np.log(pts[:, 0]), pts[:, 1]
        slope = np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)
        assert row["diffusion_slope"] == pytest.approx(slope, rel=1e-9)
        with open(study["dir"] / "runs" / slug(row["name"]) / "seed0" / "study.json") as f:
            assert row["sharpness"] == json.load(f)["sharpness"]
        assert row["sharpness"] >= 0.0
        assert row["test_accuracy_std"] == row["validation_accuracy_std"] == 0.0  # one seed


def test_regimes_differ_as_named(study):
    configs = {name: _run_result(study, name)["config"] for name in REGIMES}
    steps = {name: _run_result(study, name)["global_step"] for name in REGIMES}
    k = B_L / B_S
    expected = {  # batch, scaling, ghost, regime adaptation, updates (closed form)
        "SB": (B_S, "none", 0, False, EPOCHS * (N // B_S)),
        "LB": (B_L, "none", 0, False, EPOCHS * (N // B_L)),
        "LB+LR": (B_L, "sqrt", 0, False, EPOCHS * (N // B_L)),
        "LB+LR+GBN": (B_L, "sqrt", B_G, False, EPOCHS * (N // B_L)),
        "LB+LR+GBN+RA": (B_L, "sqrt", B_G, True, round(EPOCHS * k * (N // B_L))),
    }
    for name, (batch, scaling, ghost, ra, updates) in expected.items():
        c = configs[name]
        assert (c["batch_size"], c["lr_scaling"], c["ghost_batch_size"],
                c["regime_adaptation"]) == (batch, scaling, ghost, ra), name
        assert c["base_batch_size"] == B_S
        assert steps[name] == updates, name
    assert steps["LB+LR+GBN+RA"] == steps["SB"]  # regime adaptation restores the updates
    rows = {r["name"]: r for r in study["results"]["regimes"]}
    assert rows["LB"]["lr"] == pytest.approx(0.05)
    assert rows["LB+LR"]["lr"] == pytest.approx(0.05 * math.sqrt(k))
    # The learning rate the trainer actually used at the end (before the drop at epoch 1 *
    # stretch it is the peak, after it a tenth of it).
    for name in ("LB", "LB+LR"):
        last = _run_result(study, name)["history"][-1]["learning_rate"]
        assert last == pytest.approx(rows[name]["lr"] * 0.1, rel=1e-5), name


def test_rerun_reuses_finished_runs(study):
    """Re-running the same command trains nothing and restores the same weights."""
    proc = _run(study["cmd"])
    assert proc.stdout.count("finished before, reusing") == len(REGIMES)
    with open(study["dir"] / "results.json") as f:
        again = json.load(f)
    for a, b in zip(again["regimes"], study["results"]["regimes"]):
        assert a["validation_accuracy_mean"] == b["validation_accuracy_mean"]
        assert a["test_accuracy_mean"] == b["test_accuracy_mean"]
        assert a["updates"] == b["updates"]
    # The interpolation runs on weights restored from the checkpoints: same numbers.
    np.testing.assert_allclose(again["interpolation"]["test_loss"],
                               study["results"]["interpolation"]["test_loss"], rtol=1e-6)


def test_bad_flags_are_one_line_usage_errors(tmp_path):
    cmd = [sys.executable, "-m", "tfgap.recipes.study", "--large_batch_size=100",
           "--ghost_batch_size=32", f"--output_dir={tmp_path}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "usage error" in line]
    assert len(errors) == 1 and "ghost_batch_size" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)  # nothing trained


@pytest.mark.slow
def test_changed_settings_do_not_resume_another_run(study):
    cmd = [a if not a.startswith("--lr=") else "--lr=0.07" for a in study["cmd"]]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "lr_values" in proc.stderr and "new --output_dir" in proc.stderr
    assert "Traceback" not in proc.stderr
