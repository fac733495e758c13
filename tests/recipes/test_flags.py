"""Recipe flags: parsing, validation, one-line usage errors, and every recipes/ file."""

import glob
import os
import re
import subprocess
import sys

import pytest

from tfgap.recipes import recipe_flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE_FILES = sorted(glob.glob(os.path.join(REPO, "recipes", "*", "*.flags")))


def test_defaults_are_the_papers_small_batch_regimes():
    config = recipe_flags.parse(["prog"], "cifar10")
    assert (config.model, config.batch_size, config.lr_values, config.lr_boundaries) == (
        "resnet44", 128, (0.1, 0.01, 0.001, 0.0001), (81.0, 122.0, 164.0))
    assert config.momentum == 0.9 and config.weight_decay == 1e-4
    assert recipe_flags.parse(["prog"], "cifar100").model == "wrn16_4"
    assert recipe_flags.parse(["prog"], "mnist").model == "f1"


def test_flags_reach_the_config():
    config = recipe_flags.parse(
        ["prog", "--batch_size=4096", "--ghost_batch_size=128", "--regime_adaptation=2.5",
         "--lr_scaling=linear", "--model_options=mlp_width=8", "--model=mlp", "--seed=3",
         "--noexport"], "mnist")
    assert (config.batch_size, config.ghost_batch_size, config.regime_adaptation) == (
        4096, 128, 2.5)
    assert config.model_options == {"mlp_width": 8} and config.export_dir is None
    assert config.model_dir == os.path.join("runs", "mnist", "mlp_b4096_linear_g128_ra2.5_s3")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--batch_size=abc"], "batch_size"),
        (["--ghost_batch_size=48", "--batch_size=64"], "ghost_batch_size=48"),
        (["--lr_values=0.1,x"], "lr_values"),
        (["--lr_values=0.1"], "lr_values"),
        (["--regime_adaptation=maybe"], "regime_adaptation"),
        (["--model=resnet1000"], "model"),
        (["--strategy=tpu"], "tpu"),
        (["--mock_data", "--synthetic"], "synthetic"),
        (["--no_such_flag=1"], "no_such_flag"),
        (["--model_options=width"], "model_options"),
    ],
)
def test_bad_flags_are_usage_errors(argv, fragment):
    with pytest.raises(recipe_flags.UsageError) as info:
        recipe_flags.parse(["prog"] + argv, "mnist")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_bad_flag_on_the_command_line_is_one_line_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "tfgap.recipes.mnist", "--batch_size=64", "--ghost_batch_size=48"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "usage error" in line]
    assert len(errors) == 1 and "ghost_batch_size=48" in errors[0]
    assert "Traceback" not in proc.stderr


def test_help_on_the_command_line_exits_0_and_lists_the_recipes_flags():
    proc = subprocess.run(
        [sys.executable, "-m", "tfgap.recipes.cifar100", "--help"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("`python -m tfgap.recipes.cifar100`")
    for line in ("regime:", "  --lr_boundaries (default: 60,120,140; comma-separated numbers, "
                 "each > 0)", "  --model (default: wrn16_4; one of: "):
        assert line in proc.stdout, proc.stdout


def test_every_recipe_file_parses_and_validates():
    # recipes/<recipe>/<model>[_b<batch>]_<row>.flags, rows SB (the model's regime), LB (large
    # batch, unscaled rate), +LR (sqrt rate), +GBN (+ ghost 128), +RA (+ regime adaptation);
    # adascale, adabatch: the trainer's --adaptive=lr and =batch from the SB regime.
    assert len(RECIPE_FILES) >= 39
    assert {os.path.basename(os.path.dirname(p)) for p in RECIPE_FILES} == {
        "cifar10", "cifar100", "imagenet"}
    for path in RECIPE_FILES:
        recipe = os.path.basename(os.path.dirname(path))
        name = os.path.basename(path)[:-len(".flags")]
        with open(path) as f:
            lines = f.read().splitlines()
        assert lines[0].startswith("# ") and lines[1].startswith("# Paper: "), path
        assert f"# Run: python -m tfgap.recipes.{recipe} --flagfile=recipes/{recipe}/{name}.flags" \
            in lines, path
        assert all(line.startswith(("#", "--")) for line in lines), path
        config = recipe_flags.parse(["prog", f"--flagfile={path}"], recipe)
        config.per_replica_batch_size(1)
        model, row = name.rsplit("_", 1)
        model, batch = re.fullmatch(r"(.+?)(?:_b(\d+))?", model).groups()
        assert config.model == model, path
        assert row in ("sb", "lb", "lr", "gbn", "ra", "lars", "adascale", "adabatch"), path
        if row in ("adascale", "adabatch"):  # the trainer's adaptive modes from the SB regime
            mode = {"adascale": "lr", "adabatch": "batch"}[row]
            assert (config.adaptive, config.lr_scaling) == (mode, "none"), path
            assert config.base_batch_size == 128 and config.largest_batch_size == int(batch)
            assert config.batch_size == (int(batch) if row == "adascale" else 128), path
            config.noise_statistics_batches(1)  # splits on one replica
            continue
        if row == "lars":  # a published LARS regime (You et al. 2017; MLPerf), not a table row
            assert config.batch_size == config.base_batch_size == int(batch), path
            assert (config.optimizer, config.lr_decay) == ("lars", "polynomial"), path
            continue
        if row == "sb":
            assert config.batch_size == config.base_batch_size, path
        else:
            assert config.batch_size == int(batch or 4096) > config.base_batch_size, path
        assert (config.lr_scaling == "none") == (row == "lb"), path
        assert config.lr_scaling in ("none", "sqrt"), path
        assert (config.ghost_batch_size == 128) == (row in ("gbn", "ra")), path
        assert (config.regime_adaptation is True) == (row == "ra"), path


def test_readme_table_links_every_recipe_file():
    with open(os.path.join(REPO, "recipes", "README.md")) as f:
        readme = f.read()
    for path in RECIPE_FILES:
        assert os.path.relpath(path, os.path.join(REPO, "recipes")) in readme, path
