"""`python -m tfgap.recipes.advise` end to end, with a measurement of a few steps on mock data."""

import io
import json

import numpy as np
import pytest

from tfgap.advisor import Advice
from tfgap.recipes import advise, cli
from tfgap.recipes import recipe_flags
from tfgap.training import TrainConfig

TINY = ["--batch_size=16", "--epochs=1", "--measure_points=2", "--noise_chunks=4",
        "--max_batch_size=256", "--model_options=mlp_width=16,mlp_depth=1", "--verbose=0",
        "--mock_data", "--mock_examples=512", "--strategy=one_device"]


def execute(argv):
    out, err = io.StringIO(), io.StringIO()
    status = cli.execute(advise.PROG, define=advise.define, run=advise.run, doc=advise.__doc__,
                         argv=["advise"] + argv, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_default_mnist1d_advice_end_to_end(tmp_path, capsys):
    status, out, err = execute(TINY + [f"--output_dir={tmp_path}"])
    printed = capsys.readouterr().out + out
    assert status == 0, err
    lines = printed.strip().splitlines()
    paths = {name: tmp_path / name for name in ("advice.json", "advice.flags",
                                                   "train_config.json")}
    # The last lines name every artifact, and each exists.
    assert lines[-3:] == [f"Wrote advice:          {paths['advice.json']}",
                          f"Wrote recipe flagfile: {paths['advice.flags']}",
                          f"Wrote train config:    {paths['train_config.json']}"]
    assert all(p.exists() for p in paths.values())

    advice = Advice.load(paths["advice.json"])
    raw = json.loads(paths["advice.json"].read_text())
    assert {"b_simple", "b_simple_stderr", "candidates", "recommended"} <= set(raw)
    assert raw["recommended"] in raw["candidates"]
    assert [c.batch_size for c in advice.candidates] == [16, 32, 64, 128, 256]
    assert advice.small_batch_size == 16 and advice.settings["dataset"] == "mnist1d"
    # 461 mock training examples (512 less the validation split): 28 steps/epoch, 1 epoch;
    # no rate drop within it, so the measurement runs the whole regime.
    assert advice.num_train_examples == 461 and advice.small_steps == 28
    assert advice.settings["measure_steps"] == 28
    assert [m.step for m in advice.measurements] == [14, 28]
    # The pooled B_simple: the mean of the usable measurements in the run's second half.
    steps = advice.settings["measure_steps"]
    late = [m.b_simple for m in advice.measurements if m.step >= steps / 2 and m.usable]
    assert advice.b_simple == pytest.approx(np.mean(late))
    assert "Recommended: batch" in printed and advice.format_table() in printed

    config = TrainConfig.from_dict(json.loads(paths["train_config.json"].read_text()))
    assert config.dataset == "mnist1d" and config.batch_size == advice.recommended.batch_size
    assert config.base_batch_size == 16 and config.model_options == {"mlp_width": 16,
                                                                     "mlp_depth": 1}
    flagfile = paths["advice.flags"].read_text().splitlines()
    assert f"--batch_size={config.batch_size}" in flagfile
    # The default flagfile runs with the mnist1d recipe: the same run as train_config.json.
    assert flagfile[0] == (f"# Run: python -m tfgap.recipes.mnist1d "
                           f"--flagfile={paths['advice.flags']}")
    assert advice.settings["recipe"] == "mnist1d"
    parsed = recipe_flags.parse(["mnist1d", f"--flagfile={paths['advice.flags']}"], "mnist1d")
    assert parsed.replace(model_dir=config.model_dir, export_dir=config.export_dir) == config


def test_recipe_advice_flagfile_runs_the_recommendation(tmp_path):
    status, out, err = execute(["--recipe=mnist", "--model=mlp", f"--output_dir={tmp_path}",
                                "--lr_values=0.05", "--lr_boundaries=", "--time_steps"] + TINY
                               + ["--mock_examples=640"])
    assert status == 0, err
    advice = Advice.load(tmp_path / "advice.json")
    config = recipe_flags.parse(["mnist", f"--flagfile={tmp_path / 'advice.flags'}"], "mnist")
    rec = advice.recommended
    assert (config.dataset, config.model, config.batch_size) == ("mnist", "mlp", rec.batch_size)
    assert config.base_batch_size == 16 and config.ghost_batch_size == rec.ghost_batch_size
    expected_ra = rec.regime_adaptation if rec.regime_adaptation > 1 else False
    assert config.regime_adaptation == pytest.approx(expected_ra, rel=1e-3)
    assert config.lr_values == (0.05,)
    # --time_steps: each row's wall time is its steps times its measured step time,
    # relative to the first row's.
    times = {int(k): v for k, v in advice.settings["step_times"].items()}
    assert sorted(times) == [c.per_replica_batch_size for c in advice.candidates]
    assert all(t > 0 for t in times.values())
    first = advice.candidates[0]
    for c in advice.candidates:
        want = (c.predicted_steps * times[c.per_replica_batch_size]
                / (first.predicted_steps * times[first.per_replica_batch_size]))
        assert c.relative_wall_time == pytest.approx(want)


def test_max_batch_below_the_small_batch_is_a_usage_error(tmp_path):
    status, out, err = execute(TINY + ["--max_batch_size=8", f"--output_dir={tmp_path}"])
    assert status == 2
    assert err.count("\n") == 1 and "usage error" in err
    assert "Expected --max_batch_size >= the small batch size 16; received --max_batch_size=8. " \
           "Raise --max_batch_size" in err
    assert not (tmp_path / "advice.json").exists()


def test_too_few_noise_examples_is_a_usage_error(tmp_path):
    status, _, err = execute(TINY + ["--noise_examples=100", f"--output_dir={tmp_path}"])
    assert status == 2 and err.count("\n") == 1
    assert "--noise_chunks" in err and "128 examples" in err


def test_base_batch_must_be_the_small_batch(tmp_path):
    status, _, err = execute(TINY + ["--base_batch_size=32", f"--output_dir={tmp_path}"])
    assert status == 2 and "--base_batch_size equal to --batch_size" in err
