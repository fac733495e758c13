"""A `--quick` study, end to end through the command line (one seed, 284 mock MNIST-1D
examples: 28 held out for validation, 256 trained on).

One subprocess run of `python -m tfgap.recipes.study --quick` feeds every test here: the files
it must write (every row, ablation and claim, the figures, the SavedModel), the table
recomputed from the per-run `result.json` files the trainer wrote, and the rows' resolved
configs and step counts against closed forms and against their names.
"""

import csv
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tfgap.study import REGIMES, slug, study_regimes

pytestmark = pytest.mark.slow  # one quick study (17 runs) takes a minute or two on 2 CPUs

B_S, B_L, B_G, EPOCHS = 16, 128, 16, 2
MOCK = 284  # mock examples of the training split; a tenth (floor) is the validation split
V = MOCK // 10
N = MOCK - V  # 256 training examples: whole batches of B_S and B_L
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROWS = [r.name for r in study_regimes(large_batch_size=B_L, ghost_batch_size=B_G)]
FIGURES = ("test_error.png", "weight_distance.png", "interpolation.png", "ghost_size.png",
           "ablations.png")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    cmd = [sys.executable, "-m", "tfgap.recipes.study", "--quick", f"--epochs={EPOCHS}",
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
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _run_result(study, name):
    with open(study["dir"] / "runs" / slug(name) / "seed0" / "result.json") as f:
        return json.load(f)


def test_writes_every_row_claim_figure_and_artifact(study):
    rows = study["results"]["regimes"]
    assert [r["name"] for r in rows] == ROWS
    assert len(ROWS) == 17 and ROWS[:5] == list(REGIMES)
    assert "LB (converged)" in ROWS and "LB+LARS" in ROWS and "LB+SAM" in ROWS
    for row in rows:
        for key in ("validation_accuracy_mean", "test_accuracy_mean", "train_accuracy_mean",
                    "updates", "sharpness_mean", "diffusion_slope_mean", "wall_time_mean",
                    "weight_distance_mean"):
            assert row[key] is not None, (row["name"], key)
        assert row["seeds"] == [0]
    for name in ("SB", "LB (converged)", "LB+LR+GBN+RA"):  # measured at convergence
        row = next(r for r in rows if r["name"] == name)
        assert row["hessian_top_eigenvalue_mean"] is not None
        assert row["sharpness_subspace_mean"] is not None
    claims = study["results"]["claims"]
    assert len(claims) == 12
    for claim in claims:
        assert set(claim) >= {"claim", "measured", "held"}
        assert claim["held"] in (True, False, None)
    # One seed: no spread, so the accuracy claims are undecided and say why.
    first = claims[0]
    assert first["claim"] == "LB generalizes worse than SB at equal epochs"
    assert first["held"] is None and "fewer than 2 seeds" in first["measured"]
    for png in FIGURES:
        with open(study["dir"] / png, "rb") as f:
            assert f.read(8) == PNG_MAGIC, png
        assert png in study["results"]["figures"]
    with open(study["dir"] / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["name"] for r in csv_rows] == ROWS
    for row, csv_row in zip(rows, csv_rows):
        assert float(csv_row["test_accuracy_mean"]) == row["test_accuracy_mean"]
    markdown = (study["dir"] / "results.md").read_text()
    assert all(f"| {name} |" in markdown for name in ROWS) and "Claims:" in markdown
    stdout = study["stdout"]
    for name in ROWS:  # a progress line per run
        assert f"{name} seed 0 [" in stdout
    # The claims come last, then one "Wrote" line per artifact.
    assert stdout.index("Claims (held") > stdout.index("At convergence")
    wrote = [line for line in stdout.splitlines() if line.startswith("Wrote ")]
    paths = [line.split(": ", 1)[1].strip() for line in wrote]
    assert stdout.rstrip().endswith(wrote[-1])
    for name in ("results.md", "results.csv", "results.json", *FIGURES):
        assert str(study["dir"] / name) in paths
    assert str(study["out"] / "savedmodels" / "ra") in paths


def test_exports_the_remedied_model(study):
    export = study["out"] / "savedmodels" / "ra"
    assert (export / "saved_model.pb").exists()
    assert _run_result(study, "LB+LR+GBN+RA")["export_dir"]
    assert not _run_result(study, "SB")["export_dir"]


def test_table_is_computed_from_the_runs(study):
    for row in study["results"]["regimes"]:
        result = _run_result(study, row["name"])
        assert (result["num_train_examples"], result["num_validation_examples"]) == (N, V)
        assert row["validation_accuracy_mean"] == result["validation"]["accuracy"]
        correct = result["validation"]["accuracy"] * V  # a multiple of 1 / V
        assert correct == pytest.approx(round(correct), abs=1e-4)
        assert row["test_accuracy_mean"] == result["test"]["accuracy"]
        assert row["train_accuracy_mean"] == result["train"]["accuracy"]
        assert row["updates"] == result["global_step"]
        assert row["wall_time_mean"] == result["wall_time"]
        assert row["weight_distance_mean"] == result["weight_distance"]
        # The diffusion slope, refitted here: least squares of the distance on log t over the
        # last decade before the first rate drop (epoch 1 of SB, stretched under +RA).
        drop = round(1 * result["stretch"] * result["steps_per_epoch"])
        end = min(drop, max(p[0] for p in result["distance_record"]))
        pts = np.array([p for p in result["distance_record"] if max(1, end / 10) <= p[0] <= end],
                       np.float64)
        x, y = np.log(pts[:, 0]), pts[:, 1]
        slope = np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)
        assert row["diffusion_slope_mean"] == pytest.approx(slope, rel=1e-9), row["name"]
        with open(study["dir"] / "runs" / slug(row["name"]) / "seed0" / "study.json") as f:
            assert row["sharpness_mean"] == json.load(f)["measures"]["sharpness"]
        assert row["sharpness_mean"] >= 0.0


def test_rows_differ_only_in_what_their_names_say(study):
    configs = {name: _run_result(study, name)["config"] for name in ROWS}
    rows = {r["name"]: r for r in study["results"]["regimes"]}
    per_run = {"model_dir", "export_dir", "eval_every_epochs"}

    def differ(a, b):
        return {k for k in configs[a] if configs[a][k] != configs[b][k]} - per_run

    assert differ("LB+GBN (averaged)", "LB+GBN") == {"moving_update"}
    assert configs["LB+GBN (averaged)"]["moving_update"] == "averaged"
    for name in ("LB", "LB+GBN", "LB+GBN (averaged)", "LB+LR", "LB+LR+GBN"):
        keras_default = (f"{name[:-1]}, bn 0.99)" if name.endswith(")")
                         else f"{name} (bn 0.99)")
        assert differ(keras_default, name) == {"bn_momentum"}, name
        assert configs[keras_default]["bn_momentum"] == 0.99 and configs[name]["bn_momentum"] == 0.9
    ghosts = [n for n in ROWS if re.fullmatch(r"LB\+GBN \(ghost \d+\)", n)]
    assert ghosts == ["LB+GBN (ghost 32)", "LB+GBN (ghost 64)"]
    for name in ghosts:
        assert differ(name, "LB+GBN") == {"ghost_batch_size"}
        assert configs[name]["ghost_batch_size"] == int(name.split()[-1][:-1])
    assert differ("LB+LARS", "LB") == {"optimizer", "lars_eta"}
    assert differ("LB+SAM", "LB") == {"sam_rho"}
    assert differ("LB (converged)", "LB") == {"regime_adaptation"}
    # Table 1: batch, scaling, ghost, regime adaptation and updates against closed forms.
    k = B_L / B_S
    expected = {
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
        assert rows[name]["updates"] == updates, name
    assert rows["LB+LR"]["lr"] == pytest.approx(0.05 * math.sqrt(k))
    # LB (converged) is capped at +RA's length and records why it stopped (or that it did not).
    converged = rows["LB (converged)"]
    assert converged["updates"] <= rows["LB+LR+GBN+RA"]["updates"]
    stopped = converged["per_seed"]["stopped"][0]
    if converged["updates"] < rows["LB+LR+GBN+RA"]["updates"]:
        assert stopped["reason"] in ("train_accuracy", "plateau")
        assert stopped["step"] == converged["updates"]


def test_rerun_reuses_finished_runs(study):
    """Re-running the same command trains nothing and restores the same weights."""
    proc = _run(study["cmd"])
    assert proc.stdout.count("finished before, reusing") == len(ROWS)
    with open(study["dir"] / "results.json") as f:
        again = json.load(f)
    for a, b in zip(again["regimes"], study["results"]["regimes"]):
        assert a["test_accuracy_mean"] == b["test_accuracy_mean"]
        assert a["sharpness_mean"] == b["sharpness_mean"]
    assert [c["held"] for c in again["claims"]] == [c["held"] for c in study["results"]["claims"]]
    # The interpolation runs on weights restored from the checkpoints: same numbers.
    np.testing.assert_allclose(again["interpolation"]["test_loss"],
                               study["results"]["interpolation"]["test_loss"], rtol=1e-6)
    assert again["interpolation"]["large_batch_row"] == "LB (converged)"


def test_changed_settings_do_not_resume_another_run(study):
    cmd = [a if not a.startswith("--lr=") else "--lr=0.07" for a in study["cmd"]]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "lr_values" in proc.stderr and "new --output_dir" in proc.stderr
    assert "Traceback" not in proc.stderr


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
