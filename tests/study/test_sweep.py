"""The SB learning-rate sweep chooses on validation accuracy, never on test accuracy."""

import io
import json
import os

import numpy as np
import pytest

from tfgap.study import small_batch_config, summarize_sweep, sweep_learning_rate
from tfgap.study.regimes import run_dir
from tfgap.study.sweep import format_sweep, lr_dir, with_learning_rate

SEEDS = (10, 11)
# Per rate, per seed: the best mean validation accuracy (0.02) is not the best test one (0.04).
VAL = {0.01: (0.60, 0.62), 0.02: (0.70, 0.66), 0.04: (0.64, 0.66)}
TEST = {0.01: (0.70, 0.70), 0.02: (0.60, 0.62), 0.04: (0.75, 0.73)}


def _fake_sb_run(output_dir, lr, seed, val, test):
    model_dir = run_dir(lr_dir(output_dir, lr), "SB", seed)
    os.makedirs(model_dir)
    config = dict(seed=seed, batch_size=50, base_batch_size=50, ghost_batch_size=0,
                  lr_values=[lr, lr / 10], lr_multiplier=1.0, lr_scaling="none",
                  regime_adaptation=False)
    result = dict(status="completed", config=config, validation={"accuracy": val, "loss": 1.0},
                  test={"accuracy": test, "loss": 1.0}, train={"accuracy": 0.9, "loss": 0.3},
                  global_step=10, epochs_completed=1.0, steps_per_epoch=10, wall_time=1.0,
                  weight_distance=1.0, distance_record=[[1, 0.1], [10, 1.0]], history=[])
    with open(os.path.join(model_dir, "result.json"), "w") as f:
        json.dump(result, f)


def test_summarize_chooses_the_best_mean_validation_accuracy(tmp_path):
    for lr in VAL:
        for i, seed in enumerate(SEEDS):
            _fake_sb_run(str(tmp_path), lr, seed, VAL[lr][i], TEST[lr][i])
    sweep = summarize_sweep(str(tmp_path), list(VAL), SEEDS)
    val_means = {lr: float(np.mean(v)) for lr, v in VAL.items()}
    test_means = {lr: float(np.mean(v)) for lr, v in TEST.items()}
    assert max(val_means, key=val_means.get) == 0.02
    assert max(test_means, key=test_means.get) == 0.04  # test would choose another rate
    assert sweep["chosen_lr"] == 0.02 and sweep["chosen_by"] == "validation_accuracy_mean"
    assert sweep["chosen_test_accuracy_mean"] == pytest.approx(test_means[0.02])
    for row in sweep["rows"]:
        lr = row["lr"]
        assert row["validation_accuracy"] == list(VAL[lr])
        assert row["validation_accuracy_mean"] == pytest.approx(val_means[lr])
        assert row["validation_accuracy_std"] == pytest.approx(np.std(VAL[lr], ddof=1))
        assert row["test_accuracy_mean"] == pytest.approx(test_means[lr])
    table = format_sweep(sweep).splitlines()
    assert table[0] == "| lr | 0.01 | **0.02** | 0.04 |"
    assert "| **val, mean** | 61.0 | **68.0** | 65.0 |" in table
    assert "| test, mean | 70.0 | 61.0 | 74.0 |" in table


def test_runs_without_validation_are_refused(tmp_path):
    _fake_sb_run(str(tmp_path), 0.01, 10, None, 0.9)
    with pytest.raises(ValueError, match="validation accuracy"):
        summarize_sweep(str(tmp_path), [0.01], [10])
    base = small_batch_config(dataset="mnist1d", model="mlp", model_dir=str(tmp_path),
                              small_batch_size=16, lr=0.1, epochs=1, validation_examples=0)
    with pytest.raises(ValueError, match="validation_examples=0"):
        sweep_learning_rate(base, [0.1], output_dir=str(tmp_path / "s"))
    assert not os.path.exists(tmp_path / "s")  # nothing trained


def test_with_learning_rate_scales_every_value():
    base = small_batch_config(dataset="mnist1d", model="mlp", model_dir="/tmp/unused",
                              small_batch_size=50, lr=0.02, epochs=10, lr_boundaries=(5, 8),
                              lr_decay=0.1)
    changed = with_learning_rate(base, 0.08)
    assert changed.lr_values == pytest.approx((0.08, 0.008, 0.0008))
    assert changed.replace(lr_values=base.lr_values) == base
    with pytest.raises(ValueError, match="learning rate"):
        with_learning_rate(base, 0.0)


@pytest.mark.slow
def test_a_real_sweep_reports_the_runs_numbers(tmp_path):
    """Two rates, one seed, on 284 mock MNIST-1D signals (28 held out for validation)."""
    base = small_batch_config(dataset="mnist1d", model="mlp", model_dir=str(tmp_path),
                              small_batch_size=32, lr=0.05, epochs=1, mock_data=True,
                              mock_examples=284, model_options={"mlp_width": 16},
                              preemption=False)
    out = io.StringIO()
    sweep = sweep_learning_rate(base, [0.01, 0.3], output_dir=str(tmp_path / "sweep"),
                                seeds=(10,), stream=out)
    for row in sweep["rows"]:
        path = os.path.join(run_dir(lr_dir(str(tmp_path / "sweep"), row["lr"]), "SB", 10),
                            "result.json")
        with open(path) as f:
            result = json.load(f)
        assert result["config"]["lr_values"][0] == pytest.approx(row["lr"])
        assert result["num_validation_examples"] == 28 and result["num_train_examples"] == 256
        assert row["validation_accuracy"] == [result["validation"]["accuracy"]]
        assert row["test_accuracy"] == [result["test"]["accuracy"]]
    vals = [row["validation_accuracy_mean"] for row in sweep["rows"]]
    assert sweep["chosen_lr"] == sweep["rows"][int(np.argmax(vals))]["lr"]
    with open(tmp_path / "sweep" / "lr_sweep.json") as f:
        assert json.load(f)["chosen_lr"] == sweep["chosen_lr"]
    assert "| **val, mean** |" in out.getvalue()
