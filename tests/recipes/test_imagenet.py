"""The ImageNet recipe: mock data on one device, the real tfds builder on a tiny generated
manual directory under two mirrored CPUs (a subprocess), the missing-data message,
throughput, and the Table 2 files in `recipes/imagenet/` (each file's flags are checked by
tests/recipes/test_flags.py with every other recipe file).

There is no smaller-resolution option (the data layer crops to 224x224), so the default
suite runs AlexNet-BN at 224 with 2-4 images per step; ResNet-50 and a second mirrored run
are marked slow.
"""

import glob
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.data.test_imagenet_manual_build import NUM_VAL, PER_CLASS, SYNSETS, _write_manual_dir
from tfgap import data
from tfgap.recipes import recipe_flags
from tfgap.training import read_result, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROG = "python -m tfgap.recipes.imagenet"
TINY = ["--mock_data", "--mock_examples=10", "--validation_examples=2", "--batch_size=4",
        "--epochs=1", "--verbose=2",
        "--nopreemption", "--keep_checkpoints=1"]


def run_module(args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "tfgap.recipes.imagenet", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def parse(argv):
    return recipe_flags.parse(argv, "imagenet")


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith(PROG + ":")]


# -- defaults and recipe files ------------------------------------------------------------


def test_defaults_are_the_papers_regimes():
    alexnet = parse(["prog"])
    assert (alexnet.dataset, alexnet.model, alexnet.batch_size) == ("imagenet2012", "alexnet_bn", 128)
    assert alexnet.lr_values == (1e-2, 5e-3, 1e-3, 5e-4, 1e-4)
    assert alexnet.lr_boundaries == (10, 15, 20, 25) and alexnet.weight_decay == 5e-4
    resnet = parse(["prog", "--model=resnet50"])
    assert resnet.lr_values == (0.1, 1e-2, 1e-3, 1e-4) and resnet.lr_boundaries == (30, 60, 90)
    assert (resnet.weight_decay, resnet.batch_size, resnet.base_batch_size) == (1e-4, 256, 256)
    # A flag given explicitly wins over the model's regime.
    mine = parse(["prog", "--model=resnet50", "--weight_decay=5e-5", "--epochs=3"])
    assert (mine.weight_decay, mine.epochs, mine.lr_values[0]) == (5e-5, 3.0, 0.1)


ROWS = ("lb", "lr", "gbn", "ra")


def test_table_2_recipe_files_exist():
    names = {os.path.basename(p)[:-len(".flags")]
             for p in glob.glob(os.path.join(ROOT, "recipes", "imagenet", "*.flags"))}
    expected = {"alexnet_bn_sb", "resnet50_sb"}
    expected |= {f"alexnet_bn_b{b}_{row}" for b in (4096, 8192) for row in ROWS}
    expected |= {f"resnet50_b8192_{row}" for row in ROWS}
    expected |= {"resnet50_b2048_lars", "resnet50_b4096_lars"}
    expected |= {"alexnet_bn_b4096_adascale", "alexnet_bn_b4096_adabatch"}
    assert names == expected
    # +RA stretches by B_L / B_S (Hoffer et al.'s regime adaptation): x32 and x64 for
    # AlexNet-BN (base 128), x32 for ResNet-50 (base 256).
    for name, stretch in (("alexnet_bn_b4096_ra", 32), ("alexnet_bn_b8192_ra", 64),
                          ("resnet50_b8192_ra", 32)):
        config = parse(["prog", f"--flagfile={os.path.join(ROOT, 'recipes', 'imagenet', name)}"
                        ".flags"])
        assert config.regime_adaptation is True
        assert config.batch_size / config.base_batch_size == stretch, name


# The MLPerf Training v1.0 reference commands (mlcommons/training,
# image_classification/README_tensorflow2.md): batch -> (base lr, epochs, per-device BN batch).
MLPERF_LARS = {4096: (10.0, 42, 64), 2048: (8.5, 41, 128)}


def _lars_flagfile(batch):
    return os.path.join(ROOT, "recipes", "imagenet", f"resnet50_b{batch}_lars.flags")


@pytest.mark.parametrize("batch", sorted(MLPERF_LARS))
def test_lars_recipe_files_hold_the_mlperf_reference_regimes(batch):
    lr, epochs, bn_batch = MLPERF_LARS[batch]
    config = parse(["prog", f"--flagfile={_lars_flagfile(batch)}"])
    assert (config.model, config.batch_size, config.base_batch_size) == ("resnet50", batch, batch)
    assert (config.lr_values, config.lr_boundaries, config.epochs) == ((lr,), (), epochs)
    assert (config.lr_decay, config.lr_decay_power, config.lr_end) == ("polynomial", 2.0, 1e-4)
    assert (config.warmup_epochs, config.warmup_start) == (5.0, "zero")
    assert (config.optimizer, config.lars_eta, config.lars_trust_denominator) == (
        "lars", 0.001, "sum_of_norms")
    assert (config.weight_decay, config.momentum, config.label_smoothing) == (2e-4, 0.9, 0.1)
    assert (config.ghost_batch_size, config.eval_every_epochs) == (bn_batch, 4)


# -- missing data -------------------------------------------------------------------------


def test_missing_data_exits_within_seconds_with_one_line(tmp_path):
    data_dir = str(tmp_path / "tfds")
    start = time.time()
    proc = run_module([f"--data_dir={data_dir}", f"--model_dir={tmp_path / 'run'}"])
    elapsed = time.time() - start
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr[-2000:]
    line = lines[0]
    manual = os.path.join(data_dir, "downloads", "manual")
    for needle in ("imagenet2012", data_dir, manual, "ILSVRC2012_img_train.tar",
                   "ILSVRC2012_img_val.tar", "both"):
        assert needle in line, (needle, line)
    assert elapsed < 60, elapsed  # TF import included; the data check itself is ~1 s
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_missing_archive_with_download_names_it(tmp_path, capsys):
    data_dir = tmp_path / "tfds"
    manual = data_dir / "downloads" / "manual"
    manual.mkdir(parents=True)
    (manual / "ILSVRC2012_img_train.tar").write_bytes(b"")
    config = parse(["prog", f"--data_dir={data_dir}", "--download",
                             f"--model_dir={tmp_path / 'run'}"])
    assert recipe_flags._train(config, PROG) == recipe_flags.EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(PROG + ":")
    assert "Missing from the manual directory: ILSVRC2012_img_val.tar" in err[0]


# -- training -----------------------------------------------------------------------------


def test_one_device_mock_run_exports_raw_uint8_serving(tmp_path, capsys):
    config = parse(["prog", "--strategy=one_device", f"--model_dir={tmp_path / 'run'}",
                             f"--export_dir={tmp_path / 'export'}", *TINY])
    assert recipe_flags._train(config, PROG) == 0
    out = capsys.readouterr().out
    assert "Done: 2 steps" in out and "images/s" in out, out
    result = read_result(str(tmp_path / "run"))
    assert result["global_step"] == 2 and result["num_replicas"] == 1
    assert result["config"]["model"] == "alexnet_bn" and result["throughput"] > 0
    # lr = 1e-2 * sqrt(4 / 128) in the first epochs (sqrt scaling).
    np.testing.assert_allclose(result["history"][0]["learning_rate"], 1e-2 * (4 / 128) ** 0.5,
                               rtol=1e-5)

    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(3, 256, 256, 3), dtype=np.uint8)
    batch = served(images=tf.constant(raw))
    probs = batch["probabilities"].numpy()
    assert probs.shape == (3, 1000) and np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # Inference uses the moving statistics: one image alone gives the same logits as in a
    # batch (ghost or batch statistics would make them depend on the batch).
    for i in range(3):
        alone = served(images=tf.constant(raw[i:i + 1]))["logits"].numpy()
        np.testing.assert_allclose(alone[0], batch["logits"].numpy()[i], rtol=1e-4, atol=1e-4)
    # Any image size: resized (shorter side 256) and centre-cropped like evaluation.
    other = served(images=tf.constant(rng.integers(0, 256, (2, 300, 200, 3), dtype=np.uint8)))
    assert other["logits"].shape == (2, 1000)


def test_mirrored_run_on_the_real_builder_from_a_tiny_manual_dir(tmp_path):
    data_dir = tmp_path / "tfds"
    _write_manual_dir(str(data_dir / "downloads" / "manual"))
    # The trainer counts the data as prepared on disk (6 training images), not as the
    # published 1,281,167: one step of batch 4 per epoch.
    steps_per_epoch = (len(SYNSETS) * PER_CLASS) // 4
    proc = run_module(["--strategy=mirrored", "--logical_cpus=2", f"--data_dir={data_dir}",
                       "--download", "--batch_size=4", "--epochs=2",
                       "--noexport", "--verbose=2", "--keep_checkpoints=1",
                       f"--model_dir={tmp_path / 'run'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "images/s" in proc.stdout, proc.stdout[-2000:]
    result = read_result(str(tmp_path / "run"))
    assert result["num_replicas"] == 2 and result["strategy"] in ("mirrored", "MirroredStrategy")
    assert result["steps_per_epoch"] == steps_per_epoch and result["global_step"] == 2
    # Evaluated on the 4 real validation images (labels from tfds' validation_labels.txt).
    assert result["test"]["accuracy"] is not None
    assert result["test"]["accuracy"] * NUM_VAL == pytest.approx(
        round(result["test"]["accuracy"] * NUM_VAL))
    # The prepared data is tfds' real imagenet2012 build, read again without --download.
    assert glob.glob(str(data_dir / "imagenet2012" / "*" / "dataset_info.json"))
    labels = []
    for _, y in data.build_dataset("imagenet2012", "train", batch_size=2, training=False,
                                   data_dir=str(data_dir), validation_examples=0):
        labels += y.numpy().tolist()
    assert sorted(labels) == sorted([0] * PER_CLASS + [1] * PER_CLASS)
    assert len(SYNSETS) == 2


def test_synthetic_reports_a_positive_throughput(tmp_path):
    # Any recipe: the trainer times every step after the first (tracing) one.
    config = recipe_flags.parse(
        ["prog", "--synthetic", "--batch_size=64", "--epochs=0.005", "--eval_batch_size=2000",
         "--noexport", "--verbose=0", "--nopreemption", f"--model_dir={tmp_path / 'run'}"],
        "mnist")
    result = train(config)
    assert result["global_step"] == round(0.005 * (60000 // 64)) == 5
    assert result["throughput"] > 0
    with open(tmp_path / "run" / "result.json") as f:
        assert json.load(f)["throughput"] == result["throughput"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet_bn_b4096_ra", "resnet50_b4096_lars"])
def test_smoke_run_as_the_file_says(name, tmp_path):
    # The smoke-run flags written in the file itself, so the documented line is what runs.
    # Also the suite's one ResNet-50 training step on the ImageNet pipeline (its regime's
    # defaults: test_defaults_are_the_papers_regimes; mirrored: the real-builder run above).
    path = os.path.join(ROOT, "recipes", "imagenet", f"{name}.flags")
    with open(path) as f:
        smoke = f.read().split("smoke run: add ", 1)[1].split(".\n", 1)[0].split()
    config = parse(["prog", f"--flagfile={path}", *smoke, "--strategy=one_device", "--noexport",
                    "--verbose=2", "--nopreemption", f"--model_dir={tmp_path / 'run'}"])
    assert recipe_flags._train(config, PROG) == 0
    result = read_result(str(tmp_path / "run"))
    assert result["global_step"] == 1 and math.isfinite(result["train"]["loss"])
