"""`python -m tfgap.recipes.mnist1d`: the study's MNIST-1D MLP regime as a recipe."""

import json
import runpy
import sys

import pytest

from tfgap import data
from tfgap.recipes import recipe_flags
from tfgap.recipes.defaults import RECIPES


def test_defaults_are_the_studys_mlp_small_batch_regime():
    config = recipe_flags.parse(["prog"], "mnist1d")
    assert (config.dataset, config.model) == ("mnist1d", "mlp")
    assert config.model_options == {"mlp_depth": 3, "mlp_width": 128}
    assert (config.batch_size, config.base_batch_size, config.epochs) == (50, 50, 10.0)
    assert config.lr_boundaries == (7.0,) and config.lr_values == (0.04, 0.004)
    assert (config.momentum, config.weight_decay, config.ghost_batch_size) == (0.9, 0.0, 0)
    assert config.regime_adaptation is False and config.validation_examples == 800
    assert config.model_dir == "runs/mnist1d/mlp_b50_sqrt_s0"
    assert RECIPES["mnist1d"]["lr_values"][1] == pytest.approx(0.04 * 0.1, rel=1e-15)
    # 800 held out of 4000 leaves 3200 = 64 batches of 50: no example dropped.
    assert data.num_examples("mnist1d", "train", validation_examples=800) == 3200


def test_the_module_runs_the_recipe(tmp_path, monkeypatch, capsys):
    argv = ["mnist1d", "--mock_data", "--mock_examples=40", "--validation_examples=8",
            "--batch_size=16", "--base_batch_size=16", "--epochs=1",
            "--model_options=mlp_width=16,mlp_depth=1", f"--model_dir={tmp_path / 'run'}",
            "--noexport", "--nopreemption", "--verbose=0"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("tfgap.recipes.mnist1d", run_name="__main__")
    out = capsys.readouterr().out
    assert exit_info.value.code == 0, capsys.readouterr().err
    assert "Done: 2 steps, 1 epochs" in out
    assert f"Wrote result: {tmp_path / 'run' / 'result.json'}" in " ".join(out.split())
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["config"]["dataset"] == "mnist1d" and result["global_step"] == 2
    assert (result["num_train_examples"], result["num_validation_examples"]) == (32, 8)
