"""`python -m tfgap.recipes.study`'s flags become the study's settings (the default command,
--quick, --model=mlp, --validation_examples); the study itself is replaced by a recorder."""

import pytest
from absl import flags

import tfgap.study
from tfgap.recipes import study as recipe
from tfgap.study import MNIST1D_DEFAULTS


@pytest.fixture
def called(monkeypatch):
    calls = []
    monkeypatch.setattr(tfgap.study, "run_study", lambda base, **kw: calls.append((base, kw)))

    def run(*args):
        fv = flags.FlagValues()
        argv = ["prog", *args, "--output_dir=/tmp/tfgap_study_recipe_test", "--noexport"]
        recipe.define(fv, argv)
        fv(argv)
        recipe.run(fv, argv)
        return calls[-1]

    return run


def test_default_command(called):
    base, kw = called()
    d = MNIST1D_DEFAULTS
    assert (base.model, base.model_options) == ("cnn1d", d["model_options"])
    assert base.validation_examples == d["validation_examples"] == 928
    assert (base.batch_size, base.epochs, base.lr_boundaries) == (32, 12.0, (8.0,))
    assert base.lr_values == pytest.approx((0.05, 0.005))
    assert (kw["large_batch_size"], kw["ghost_batch_size"]) == (512, 32)
    assert list(kw["seeds"]) == [0, 1, 2, 3, 4] and list(kw["long_seeds"]) == [0, 1]
    assert list(kw["ablation_seeds"]) == [0, 1, 2]
    assert kw["workers"] is None and kw["threads"] == 1  # None: one worker per core
    assert kw["export_dir"] is None and kw["sharpness_examples"] == 1000
    assert kw["started"] <= __import__("time").time()


def test_quick_takes_a_sixth_of_the_epochs_and_one_seed(called):
    base, kw = called("--quick")
    assert base.epochs == 2.0 and base.lr_boundaries == pytest.approx((4 / 3,))
    assert list(kw["seeds"]) == [0] and list(kw["long_seeds"]) == [0]
    assert list(kw["ablation_seeds"]) == [0]
    assert kw["sharpness_examples"] == 250
    base, kw = called("--quick", "--seeds=2", "--epochs=3", "--lr_boundaries=2", "--workers=3")
    assert (base.epochs, base.lr_boundaries) == (3.0, (2.0,))
    assert list(kw["seeds"]) == [0, 1] and list(kw["long_seeds"]) == [0]
    assert kw["workers"] == 3


def test_mlp_and_validation_flags(called):
    base, _ = called("--model=mlp", "--validation_examples=400")
    assert base.model_options == {"mlp_width": 128, "mlp_depth": 3}
    assert base.validation_examples == 400
    base, _ = called("--mock_data", "--mock_examples=284")
    assert base.validation_examples is None  # mock data: the data's default (10%)
