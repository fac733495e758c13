"""A `--quick` study, end to end through the command line (one seed, 284 mock MNIST-1D
examples: 28 held out for validation, 256 trained on), on two worker processes.

One subprocess run of `python -m tfgap.recipes.study --quick --workers=2` feeds every test
here: the files it must write (every row and claim, the figures, the SavedModel), the table
recomputed from the per-run `result.json` and `study.json` files, the derived rows' numbers
recomputed from the source run's checkpoint and saved moving statistics, the rows' resolved
configs and step counts against closed forms, and a serial re-run (`workers=1`) of some rows
that must give the same numbers to the last bit.
"""

import csv
import io
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tfgap.study import (
    REGIMES,
    claims,
    keskar,
    moving,
    regime_configs,
    report,
    run_study,
    slug,
    study_regimes,
    trainings,
)
from tfgap.study.runner import _restored_model, fixed_examples
from tfgap.training import TrainConfig

pytestmark = pytest.mark.slow  # one quick study (14 trainings) takes a minute or two on 2 CPUs

B_S, B_L, B_G, EPOCHS = 16, 128, 16, 2
MOCK = 284  # mock examples of the training split; a tenth (floor) is the validation split
V = MOCK // 10
N = MOCK - V  # 256 training examples: whole batches of B_S and B_L
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROWS = [r.name for r in study_regimes(large_batch_size=B_L, ghost_batch_size=B_G,
                                     small_batch_size=B_S)]
FIGURES = ("test_error.png", "weight_distance.png", "interpolation.png", "ghost_size.png",
           "ablations.png")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    cmd = [sys.executable, "-m", "tfgap.recipes.study", "--quick", f"--epochs={EPOCHS}",
           "--mock_data", f"--mock_examples={MOCK}", f"--small_batch_size={B_S}",
           f"--large_batch_size={B_L}", f"--ghost_batch_size={B_G}", "--lr=0.05",
           "--lr_boundaries=1", "--sharpness_examples=64", "--interpolation_points=5",
           "--workers=2",
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


def _sources(study):
    base = TrainConfig.from_dict(study["results"]["settings"]["base_config"])
    rows = study_regimes(large_batch_size=B_L, ghost_batch_size=B_G, small_batch_size=B_S)
    configs = regime_configs(base, large_batch_size=B_L, ghost_batch_size=B_G, regimes=None)
    return {d.name: g.row.name for g in trainings(rows, configs) for d in g.derived}


def test_writes_every_row_claim_figure_and_artifact(study):
    rows = study["results"]["regimes"]
    assert [r["name"] for r in rows] == ROWS
    assert len(ROWS) == 24 and ROWS[:5] == list(REGIMES)
    sources = _sources(study)
    assert len(sources) == 10 and sources["LB+GBN (averaged, bn 0.99)"] == "LB+GBN"
    runs = len(ROWS) - len(sources)
    for row in rows:
        for key in ("validation_accuracy_mean", "test_accuracy_mean", "train_accuracy_mean",
                    "updates", "diffusion_slope_mean", "wall_time_mean",
                    "weight_distance_mean", "weight_norm_mean"):
            assert row[key] is not None, (row["name"], key)
        assert row["seeds"] == [0]
        assert row["trained_as"] == sources.get(row["name"])
        assert row["per_seed"]["test_examples"] == [MOCK]  # mock data: the test split's size
        assert len(row["per_seed"]["test_correct"][0]) == 2 * math.ceil(MOCK / 8)
    measured = [r["name"] for r in rows if r["hessian_top_eigenvalue_mean"] is not None]
    assert measured == ["SB (converged)", "LB (converged)"]
    for name in measured:
        row = next(r for r in rows if r["name"] == name)
        assert row["sharpness_mean"] >= 0 and row["relative_sharpness_mean"] >= 0
        assert row["stability_bound_mean"] == pytest.approx(
            2 * 1.9 / row["final_learning_rate_mean"])
    found = study["results"]["claims"]
    assert [c["key"] for c in found] == [c.key for c in claims.CLAIMS]
    for claim in found:
        assert claim["outcome"] == "undecided"  # one seed decides nothing
        assert {"claim", "outcome", "interval", "test", "measured", "kind"} <= set(claim)
    assert found[0]["interval"] == "fewer than 2 paired seeds"
    for png in FIGURES:
        with open(study["dir"] / png, "rb") as f:
            assert f.read(8) == PNG_MAGIC, png
        assert png in study["results"]["figures"]
    assert [e["seed"] for e in study["results"]["interpolations"]] == [0]
    assert study["results"]["interpolations"][0]["small_batch_row"] == "SB (converged)"
    with open(study["dir"] / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["name"] for r in csv_rows] == ROWS
    for row, csv_row in zip(rows, csv_rows):
        assert float(csv_row["test_accuracy_mean"]) == row["test_accuracy_mean"]
    markdown = (study["dir"] / "results.md").read_text()
    assert all(f"| {name} |" in markdown for name in ROWS) and "Claims:" in markdown
    stdout = study["stdout"]
    assert f"{runs} runs on 2 worker processes" in stdout
    for name in ROWS:  # a progress line per training, naming the rows it gives
        line = next(x for x in stdout.splitlines()
                    if f"{sources.get(name, name)} seed 0" in x and "trained in" in x)
        assert name == sources.get(name, name) or name in line
    assert len(re.findall(rf"^\[\d+/{runs}\] ", stdout, re.M)) == runs
    assert len({int(p) for p in re.findall(r"\(pid (\d+)\)", stdout)}) == 2
    # The claims come last, then one "Wrote" line per artifact.
    assert stdout.index("Claims (paired by seed") > stdout.index("Measured minima")
    wrote = [line for line in stdout.splitlines() if line.startswith("Wrote ")]
    paths = [line.split(": ", 1)[1].strip() for line in wrote]
    assert stdout.rstrip().endswith(wrote[-1])
    for name in ("results.md", "results.csv", "results.json", *FIGURES):
        assert str(study["dir"] / name) in paths
    assert str(study["out"] / "savedmodels" / "ra") in paths
    machine = study["results"]["machine"]
    assert machine["cpu_seconds"] > 0 and study["results"]["wall_time"] > 0


def test_exports_the_remedied_model(study):
    export = study["out"] / "savedmodels" / "ra"
    assert (export / "saved_model.pb").exists()
    assert _run_result(study, "LB+LR+GBN+RA")["export_dir"]
    assert not _run_result(study, "SB")["export_dir"]


def test_table_is_computed_from_the_runs(study):
    sources = _sources(study)
    for row in study["results"]["regimes"]:
        trained = sources.get(row["name"], row["name"])
        result = _run_result(study, trained)
        with open(study["dir"] / "runs" / slug(trained) / "seed0" / "study.json") as f:
            record = json.load(f)
        assert (result["num_train_examples"], result["num_validation_examples"]) == (N, V)
        evaluation = (record["derived"][row["name"]]["evaluation"] if row["name"] in sources
                      else record["evaluation"])
        if row["name"] not in sources:  # the study's evaluation is the trainer's, exactly
            assert evaluation["test_accuracy"] == result["test"]["accuracy"]
            assert evaluation["validation_accuracy"] == result["validation"]["accuracy"]
        assert row["validation_accuracy_mean"] == evaluation["validation_accuracy"]
        assert row["test_accuracy_mean"] == evaluation["test_accuracy"]
        correct = report.unpack_correct(row["per_seed"]["test_correct"][0], MOCK)
        assert correct.mean() == pytest.approx(row["test_accuracy_mean"], abs=1e-12)
        v_correct = row["validation_accuracy_mean"] * V  # a multiple of 1 / V
        assert v_correct == pytest.approx(round(v_correct), abs=1e-4)
        assert row["train_accuracy_mean"] == result["train"]["accuracy"]
        assert row["updates"] == result["global_step"]
        assert row["wall_time_mean"] == result["wall_time"]
        assert row["weight_distance_mean"] == result["weight_distance"]
        assert row["weight_norm_mean"] == record["weight_norm"]
        # The diffusion slope, refitted here: least squares of the distance on log t over the
        # last decade before the first rate drop (epoch 1 of SB, stretched under +RA).
        drop = round(result["config"]["lr_boundaries"][0] * result["stretch"]
                     * result["steps_per_epoch"])
        end = min(drop, max(p[0] for p in result["distance_record"]))
        pts = np.array([p for p in result["distance_record"] if max(1, end / 10) <= p[0] <= end],
                       np.float64)
        if len({p[0] for p in pts}) < 2:
            assert row["diffusion_slope_mean"] is None
            continue
        x, y = np.log(pts[:, 0]), pts[:, 1]
        slope = np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)
        assert row["diffusion_slope_mean"] == pytest.approx(slope, rel=1e-9), row["name"]


def test_derived_rows_are_the_source_model_with_the_saved_statistics(study):
    """Recomputed outside the study: the source's final checkpoint, the saved statistics of
    the derived rule swapped in, the test split scored."""
    rows = {r["name"]: r for r in study["results"]["regimes"]}
    for name, source in (("LB (bn 0.99)", "LB"), ("LB+GBN (averaged, bn 0.99)", "LB+GBN")):
        model_dir = study["dir"] / "runs" / slug(source) / "seed0"
        config = TrainConfig.from_dict(_run_result(study, source)["config"])
        model = _restored_model(config)
        saved = moving.load(model_dir / "moving_statistics.npz")
        x, y = fixed_examples(config, "test", MOCK)
        with moving.swapped(model, saved[name]):
            derived = keskar.evaluate(model, x, y, batch_size=config.batch_size)
        assert derived["accuracy"] == rows[name]["test_accuracy_mean"]
        own = keskar.evaluate(model, x, y, batch_size=config.batch_size)
        assert own["accuracy"] == rows[source]["test_accuracy_mean"]


def test_a_serial_rerun_gives_the_same_numbers(study, tmp_path):
    """Runs of the parallel study (two workers) again on one worker: identical numbers."""
    base = TrainConfig.from_dict(study["results"]["settings"]["base_config"])
    names = ("SB", "LB", "LB (bn 0.99)")
    serial = run_study(base, output_dir=str(tmp_path / "serial"), large_batch_size=B_L,
                       ghost_batch_size=B_G, seeds=[0], regimes=names, workers=1,
                       sharpness_examples=64, interpolation_points=0, stream=io.StringIO())
    parallel = {r["name"]: r for r in study["results"]["regimes"]}
    keys = ("validation_accuracy", "test_accuracy", "test_correct", "train_accuracy",
            "train_loss", "weight_distance", "weight_norm", "diffusion_slope", "sharpness",
            "relative_sharpness", "hessian_top_eigenvalue", "subset_loss")
    for row in serial["regimes"]:
        for key in keys:
            assert row["per_seed"][key] == parallel[row["name"]]["per_seed"][key], (
                row["name"], key)
    assert serial["settings"]["workers"] == 1 and study["results"]["settings"]["workers"] == 2


def test_rows_differ_only_in_what_their_names_say(study):
    configs = {name: _run_result(study, name)["config"] for name in ROWS
               if name not in _sources(study)}
    rows = {r["name"]: r for r in study["results"]["regimes"]}
    per_run = {"model_dir", "export_dir", "eval_every_epochs", "jit_compile"}
    # How a run is computed, not what it is: XLA exactly for the long (+RA) rows.
    assert {n for n in configs if configs[n]["jit_compile"]} == {
        n for n in configs if n.endswith("+RA")}

    def differ(a, b):
        return {k for k in configs[a] if configs[a][k] != configs[b][k]} - per_run

    ghosts = [n for n in ROWS if re.fullmatch(r"LB\+LR\+GBN \(ghost \d+\)", n)]
    assert ghosts == ["LB+LR+GBN (ghost 32)", "LB+LR+GBN (ghost 64)"]
    for name in ghosts:
        assert differ(name, "LB+LR+GBN") == {"ghost_batch_size"}
        assert configs[name]["ghost_batch_size"] == int(name.split()[-1][:-1])
    assert differ("LB+LARS", "LB") == {"optimizer", "lars_eta"}
    assert differ("LB+SAM", "LB") == {"sam_rho"}
    assert differ("LB (converged)", "LB") == {"regime_adaptation"}
    assert differ("LB+RA", "LB") == {"regime_adaptation"}
    assert differ("SB (converged)", "SB") == {"regime_adaptation"}
    assert configs["SB (converged)"]["regime_adaptation"] == B_L / B_S
    assert differ("SB (LB's updates)", "SB") == {"epochs", "lr_boundaries"}
    assert rows["SB (LB's updates)"]["updates"] == rows["LB"]["updates"]
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
    # The convergence rows are capped at +RA's length and record why they stopped.
    for name in ("SB (converged)", "LB (converged)"):
        converged = rows[name]
        cap = EPOCHS * k * (N // converged["batch_size"])
        assert converged["updates"] <= cap
        stopped = converged["per_seed"]["stopped"][0]
        if converged["updates"] < cap:
            assert stopped["reason"] in ("train_accuracy", "plateau")
            assert stopped["step"] == converged["updates"]


def test_rerun_reuses_finished_runs(study):
    """Re-running the same command trains nothing and restores the same weights."""
    proc = _run(study["cmd"])
    assert proc.stdout.count("finished before, reused") == len(ROWS) - len(_sources(study))
    assert "worker process" not in proc.stdout  # nothing left to train: no worker started
    with open(study["dir"] / "results.json") as f:
        again = json.load(f)
    for a, b in zip(again["regimes"], study["results"]["regimes"]):
        assert a["test_accuracy_mean"] == b["test_accuracy_mean"]
        assert a["sharpness_mean"] == b["sharpness_mean"]
    assert again["claims"] == study["results"]["claims"]
    # The interpolation runs on weights restored from the checkpoints: same numbers.
    np.testing.assert_allclose(again["interpolations"][0]["test_loss"],
                               study["results"]["interpolations"][0]["test_loss"], rtol=1e-6)
    assert again["interpolations"][0]["large_batch_row"] == "LB (converged)"


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
