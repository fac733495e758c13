"""The table is computed from the runs' files (validation and test accuracy): checked against
hand computations."""

import csv
import json
import math
import os
import statistics

import numpy as np
import pytest

from tfgap.study import report
from tfgap.study.regimes import run_dir


def test_diffusion_slope_recovers_a_log_law():
    record = [[0, 0.0]] + [[t, 0.7 * math.log(t) + 0.2] for t in (1, 2, 3, 5, 8, 13, 21)]
    assert report.diffusion_slope(record) == pytest.approx(0.7, abs=1e-9)


def _least_squares(xs, ys):
    """Slope, intercept and RMS residual of y = a x + b, by the normal equations."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    b = my - a * mx
    return a, b, math.sqrt(sum((a * x + b - y) ** 2 for x, y in zip(xs, ys)) / n)


def test_diffusion_fit_uses_the_last_decade_of_the_high_rate_phase():
    # Steps 1..400; the rate drops at step 200: the window is [20, 200].
    rng = np.random.default_rng(0)
    steps = [1, 2, 5, 10, 20, 40, 80, 120, 200, 300, 400]
    dist = [float(0.5 * math.sqrt(t) + rng.normal(0, 0.05)) for t in steps]
    fit = report.diffusion_fit([[0, 0.0]] + [[t, d] for t, d in zip(steps, dist)],
                               high_lr_end=200)
    kept = [(t, d) for t, d in zip(steps, dist) if 20 <= t <= 200]
    assert fit["window"] == [20.0, 200.0] and fit["points"] == len(kept) == 5
    a, b, rmse_log = _least_squares([math.log(t) for t, _ in kept], [d for _, d in kept])
    _, _, rmse_sqrt = _least_squares([math.sqrt(t) for t, _ in kept], [d for _, d in kept])
    assert fit["slope"] == pytest.approx(a, rel=1e-10)
    assert fit["intercept"] == pytest.approx(b, rel=1e-10)
    assert fit["rmse_log"] == pytest.approx(rmse_log, rel=1e-8)
    assert fit["rmse_sqrt"] == pytest.approx(rmse_sqrt, rel=1e-8)
    assert fit["rmse_sqrt"] < fit["rmse_log"]  # a random walk's sqrt law fits sqrt data better
    # Without a drop, the window is the run's last decade.
    assert report.diffusion_fit([[t, d] for t, d in zip(steps, dist)])["window"] == [40.0, 400.0]
    assert report.diffusion_fit([[0, 0.0], [5, 1.0]]) is None


def test_high_lr_end_closed_form():
    assert report.high_lr_end({"lr_boundaries": [8.0]}, 96, 1.0) == 768
    assert report.high_lr_end({"lr_boundaries": [8.0, 10.0]}, 6, 16.0) == 768
    assert report.high_lr_end({"lr_boundaries": [4.0]}, 6, 1.0) == 24
    assert report.high_lr_end({"lr_boundaries": []}, 6, 1.0) is None


def test_mean_std_is_sample_std():
    values = [0.71, 0.74, 0.69]
    mean, std = report.mean_std(values)
    assert mean == pytest.approx(statistics.mean(values))
    assert std == pytest.approx(statistics.stdev(values))
    assert report.mean_std([None, None]) == (None, None)
    assert report.mean_std([None, 0.5]) == (0.5, 0.0)


def _fake_run(output_dir, regime, seed, *, batch, lr_scaling, val, test, train, steps, wall,
              dist, record, sharp):
    model_dir = run_dir(output_dir, regime, seed)
    os.makedirs(model_dir)
    config = dict(seed=seed, batch_size=batch, base_batch_size=32, ghost_batch_size=0,
                  lr_values=[0.01], lr_multiplier=1.0, lr_scaling=lr_scaling,
                  regime_adaptation=False, lr_boundaries=[], bn_momentum=0.9,
                  moving_update="sequential", optimizer="sgd", sam_rho=0.0)
    result = dict(status="completed", config=config, validation={"accuracy": val, "loss": 0.9},
                  test={"accuracy": test, "loss": 1.0}, num_validation_examples=400,
                  train={"accuracy": train, "loss": 0.5}, global_step=steps,
                  epochs_completed=2.0, steps_per_epoch=steps // 2, wall_time=wall,
                  weight_distance=dist, distance_record=record,
                  history=[dict(epoch=1, step=steps // 2, epochs_completed=1.0,
                                test_accuracy=test - 0.1),
                           dict(epoch=2, step=steps, epochs_completed=2.0, test_accuracy=test)])
    with open(os.path.join(model_dir, "result.json"), "w") as f:
        json.dump(result, f)
    with open(os.path.join(model_dir, "study.json"), "w") as f:
        json.dump(dict(regime=regime, seed=seed, sharpness=sharp,
                       measures=dict(sharpness=sharp, subset_loss=0.1)), f)


def test_summarize_and_write(tmp_path):
    out = str(tmp_path)
    tests = {"SB": [0.80, 0.84], "LB+LR": [0.70, 0.75]}
    vals = {"SB": [0.78, 0.86], "LB+LR": [0.72, 0.71]}
    for name, batch, scaling in (("SB", 32, "none"), ("LB+LR", 512, "sqrt")):
        for i, seed in enumerate((0, 1)):
            record = [[0, 0.0]] + [[t, (i + 1) * math.log(t) + 3] for t in (1, 2, 4, 8)]
            _fake_run(out, name, seed, batch=batch, lr_scaling=scaling, val=vals[name][i],
                      test=tests[name][i],
                      train=0.9 + 0.01 * i, steps=100 if name == "SB" else 8,
                      wall=10.0 + i, dist=5.0 + 2 * i, record=record, sharp=1.0 + 3 * i)
    runs = report.load_runs(out, regimes=["SB", "LB+LR"], seeds=[0, 1])
    results = report.summarize(runs)
    rows = {r["name"]: r for r in results["regimes"]}
    assert list(rows) == ["SB", "LB+LR"]
    sb, lb = rows["SB"], rows["LB+LR"]
    assert sb["test_accuracy_mean"] == pytest.approx(0.82)
    assert sb["validation_accuracy_mean"] == pytest.approx(0.82)
    assert sb["validation_accuracy_std"] == pytest.approx(math.sqrt(2 * 0.04**2))
    assert lb["validation_accuracy_mean"] == pytest.approx(0.715)
    assert sb["per_seed"]["validation_accuracy"] == [0.78, 0.86]
    assert sb["validation_examples"] == 400
    assert sb["test_accuracy_std"] == pytest.approx(math.sqrt(2 * 0.02**2))
    assert lb["test_accuracy_mean"] == pytest.approx(0.725)
    assert sb["train_accuracy_mean"] == pytest.approx(0.905)
    assert sb["wall_time_mean"] == pytest.approx(10.5)
    assert sb["weight_distance_mean"] == pytest.approx(6.0)
    assert sb["weight_distance_std"] == pytest.approx(math.sqrt(2.0))
    assert sb["diffusion_slope_mean"] == pytest.approx(1.5)  # slopes 1 and 2
    assert sb["sharpness_mean"] == pytest.approx(2.5)
    assert sb["sharpness_std"] == pytest.approx(math.sqrt(4.5))
    assert sb["hessian_top_eigenvalue_mean"] is None  # not measured for these runs
    assert (sb["updates"], lb["updates"]) == (100, 8)
    assert sb["lr"] == pytest.approx(0.01)
    assert lb["lr"] == pytest.approx(0.01 * 4.0)  # sqrt(512 / 32)

    results["wall_time"] = 1.0
    report.write_results(results, out)
    with open(os.path.join(out, "results.json")) as f:
        assert json.load(f)["regimes"][0]["test_accuracy_mean"] == pytest.approx(0.82)
    with open(os.path.join(out, "results.csv")) as f:
        rows_csv = list(csv.DictReader(f))
    assert [r["name"] for r in rows_csv] == ["SB", "LB+LR"]
    assert float(rows_csv[1]["test_accuracy_std"]) == pytest.approx(
        np.std([0.70, 0.75], ddof=1))
    assert float(rows_csv[1]["validation_accuracy_mean"]) == pytest.approx(0.715)
    assert float(rows_csv[1]["validation_accuracy_std"]) == pytest.approx(
        np.std([0.72, 0.71], ddof=1))
    table = report.format_table(results)
    assert "82.0 ± 2.8" in table and "LB+LR" in table
    header, _, sb_line = table.splitlines()[:3]
    assert header.index("val acc %") < header.index("test acc %")
    assert "82.0 ± 5.7" in sb_line  # validation: 0.78, 0.86
    assert "71.5 ± 0.7" in table.splitlines()[3]
    assert report.format_markdown(results).count("\n") == 3
    with open(os.path.join(out, "results.md")) as f:
        assert f.read().count("\n") == 4


def test_a_derived_row_reads_its_training_and_its_own_statistics(tmp_path):
    """A row derived from another's training (other BN moving statistics): the training's
    numbers are shared, its accuracies and correctness are its own, its config says so."""
    out = str(tmp_path)
    record = [[0, 0.0]] + [[t, math.log(t)] for t in (1, 2, 4, 8)]
    _fake_run(out, "LB", 0, batch=512, lr_scaling="none", val=0.9, test=0.91, train=0.95,
              steps=8, wall=3.0, dist=2.0, record=record, sharp=None)
    study_path = os.path.join(run_dir(out, "LB", 0), "study.json")
    with open(study_path) as f:
        study = json.load(f)
    correct = [True, False, True, True]
    study.update(regime="LB", weight_norm=12.5,
                 evaluation=dict(test_accuracy=0.91, validation_accuracy=0.9,
                                 test_correct=report.pack_correct([True] * 4), test_examples=4),
                 derived={"LB (bn 0.99)": dict(bn_momentum=0.99, moving_update="sequential",
                                               evaluation=dict(
                                                   test_accuracy=0.75, validation_accuracy=0.7,
                                                   test_correct=report.pack_correct(correct),
                                                   test_examples=4))})
    with open(study_path, "w") as f:
        json.dump(study, f)
    runs = report.load_runs(out, regimes=["LB", "LB (bn 0.99)"], seeds=[0],
                            sources={"LB (bn 0.99)": "LB"})
    lb, slow = runs["LB"][0], runs["LB (bn 0.99)"][0]
    assert (lb["test_accuracy"], slow["test_accuracy"]) == (0.91, 0.75)
    assert (lb["validation_accuracy"], slow["validation_accuracy"]) == (0.9, 0.7)
    assert slow["config"]["bn_momentum"] == 0.99 and lb["config"]["bn_momentum"] == 0.9
    assert slow["trained_as"] == "LB" and lb["trained_as"] is None
    for key in ("train_accuracy", "updates", "weight_distance", "diffusion_slope", "weight_norm"):
        assert slow[key] == lb[key], key
    assert slow["history"] == [] and lb["history"]
    np.testing.assert_array_equal(report.unpack_correct(slow["test_correct"], 4), correct)
    rows = {r["name"]: r for r in report.summarize(runs)["regimes"]}
    assert rows["LB (bn 0.99)"]["trained_as"] == "LB"
    assert "= LB" in report.format_table({"regimes": list(rows.values())}).splitlines()[-1]
    with pytest.raises(ValueError, match="derived row"):
        report.load_run(run_dir(out, "LB", 0), derived="LB+GBN (averaged)")


def test_epoch_value_is_the_one_reader_of_the_trainers_keys():
    entry = {"val_accuracy": 0.8, "val_loss": 0.5, "test_accuracy": 0.7,
             "test_loss": 0.6, "loss": 0.1, "accuracy": 0.99, "learning_rate": 0.05}
    assert [report.epoch_value(entry, s, "accuracy") for s in ("validation", "test", "train")] \
        == [0.8, 0.7, 0.99]
    assert report.epoch_value(entry, "train", "learning_rate") == 0.05
    assert report.epoch_value(None, "test", "accuracy") is None
    # No other file of the study names the trainer's per-epoch keys.
    import pathlib

    import tfgap.study

    folder = pathlib.Path(tfgap.study.__file__).parent
    for path in folder.glob("*.py"):
        if path.name == "report.py":
            continue
        text = path.read_text()
        for key in ('"val_loss"', '"val_accuracy"', 'h["test_accuracy"]',
                    'get("test_accuracy")', 'logs.get("val'):
            assert key not in text, (path.name, key)
