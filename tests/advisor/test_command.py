"""`python -m tfgap.recipes.advise` end to end, with a measurement of a few steps on mock data."""

import dataclasses
import io
import json
import math

import pytest

from tfgap.advisor import Advice
from tfgap.recipes import advise, cli, recipe_flags
from tfgap.training import TrainConfig

TINY = ["--batch_size=16", "--epochs=1", "--noise_draws=4",
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
    # B_simple: the trainer's moving averages at the end of the run (one epoch), decay
    # (28 - 2) / (28 + 2) so that they span about the run's second half.
    (last,) = advice.settings["b_simple_by_epoch"]
    assert (last["epoch"], last["step"]) == (1, 28)
    assert advice.b_simple == last["b_simple"] and advice.b_simple_stderr == last[
        "b_simple_stderr"]
    assert last["b_simple"] == pytest.approx(last["trace_sigma"] / last["grad_norm_sq"])
    assert advice.settings["statistics_decay"] == pytest.approx(26 / 30)
    assert advice.measurements == ()
    # B_noise and eps_max measured on the trained model and reported; B_crit = B_simple,
    # the recommendation the candidate closest to it, its rate the trusted one times
    # AdaScale's gain.
    assert advice.settings["noise_draws"] == 4
    assert advice.b_crit_source == "b_simple" and advice.b_crit == advice.b_simple
    assert advice.learning_rate_rule == "gain"
    closest = min(advice.candidates, key=lambda c: (
        abs(math.log(c.batch_size / advice.b_simple)), c.batch_size))
    assert advice.recommended == closest
    # eps_opt(B) = (1 - momentum) eps_max / (1 + B_noise / B), momentum 0.9 (the default);
    # gain(B) = (1 + B_simple / 16) / (1 + B_simple / B).
    for c in advice.candidates:
        assert c.learning_rate_eps_opt == pytest.approx(
            0.1 * advice.eps_max / (1 + advice.b_noise / c.batch_size))
        assert c.learning_rate_gain == pytest.approx(advice.learning_rate * (
            1 + advice.b_simple / 16) / (1 + advice.b_simple / c.batch_size))
    assert "Recommended: batch" in printed and advice.format_table() in printed

    config = TrainConfig.from_dict(json.loads(paths["train_config.json"].read_text()))
    assert config.dataset == "mnist1d" and config.batch_size == advice.recommended.batch_size
    assert config.base_batch_size == 16 and config.model_options == {"mlp_width": 16,
                                                                     "mlp_depth": 1}
    flagfile = paths["advice.flags"].read_text().splitlines()
    assert f"--batch_size={config.batch_size}" in flagfile
    # The flagfile trains at the gain's rate: the first rate lr_values[0] * lr_multiplier.
    assert config.lr_scaling == "none" and config.warmup_start == "zero"
    assert config.lr_values[0] * config.lr_multiplier == pytest.approx(
        advice.recommended.learning_rate_gain, rel=1e-5)
    # The default flagfile runs with the mnist1d recipe: the same run as train_config.json.
    assert flagfile[0] == (f"# Run: python -m tfgap.recipes.mnist1d "
                           f"--flagfile={paths['advice.flags']}")
    assert advice.settings["recipe"] == "mnist1d"
    parsed = recipe_flags.parse(["mnist1d", f"--flagfile={paths['advice.flags']}"], "mnist1d")
    assert parsed.replace(model_dir=config.model_dir, export_dir=config.export_dir) == config


def test_recipe_advice_flagfile_runs_the_recommendation(tmp_path):
    # Synthetic MNIST (one random batch, repeated): a measurable gradient within 60 steps.
    status, _, err = execute([
        "--recipe=mnist", "--model=mlp", f"--output_dir={tmp_path}", "--lr_values=0.05",
        "--lr_multiplier=0.5", "--lr_boundaries=", "--time_steps", "--batch_size=256",
        "--epochs=1", "--measure_steps=60", "--noise_draws=4", "--max_batch_size=4096",
        "--model_options=mlp_width=16,mlp_depth=1", "--verbose=0", "--synthetic",
        "--strategy=one_device"])
    assert status == 0, err
    advice = Advice.load(tmp_path / "advice.json")
    config = recipe_flags.parse(["mnist", f"--flagfile={tmp_path / 'advice.flags'}"], "mnist")
    rec = advice.recommended
    assert (config.dataset, config.model, config.batch_size) == ("mnist", "mlp", rec.batch_size)
    assert config.base_batch_size == 256 and config.ghost_batch_size == rec.ghost_batch_size
    expected_ra = rec.regime_adaptation if rec.regime_adaptation > 1 else False
    assert config.regime_adaptation == pytest.approx(expected_ra, rel=1e-3)
    assert config.lr_values == (0.05,)
    # The trusted rate is 0.05 x 0.5; the flagfile's first rate is the gain's at the batch.
    assert advice.learning_rate == pytest.approx(0.025)
    assert advice.learning_rate_rule == "gain" and config.lr_scaling == "none"
    assert 0.05 * config.lr_multiplier == pytest.approx(rec.learning_rate_gain, rel=1e-5)
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
    status, _, err = execute(TINY + ["--max_batch_size=8", f"--output_dir={tmp_path}"])
    assert status == 2
    assert err.count("\n") == 1 and "usage error" in err
    assert "Expected --max_batch_size >= the small batch size 16; received --max_batch_size=8. " \
           "Raise --max_batch_size" in err
    assert not (tmp_path / "advice.json").exists()


def test_too_few_noise_examples_is_a_usage_error(tmp_path):
    status, _, err = execute(TINY + ["--noise_examples=20", f"--output_dir={tmp_path}"])
    assert status == 2 and err.count("\n") == 1
    assert "Expected at least 2 x --batch_size = 32 examples for the B_noise draws; received " \
           "20 (--noise_examples=20, 461 training examples)" in err


def test_an_undefined_b_simple_fails_and_says_what_to_change(tmp_path):
    # Mock MNIST has random labels: at batch 16 the noise hides the gradient (B_simple in
    # the hundreds; each step's |G|^2 estimate from two half batches of 8 is mostly noise).
    status, _, err = execute(["--recipe=mnist", "--model=mlp", "--lr_values=0.025",
                                "--lr_boundaries=", f"--output_dir={tmp_path}"] + TINY
                               + ["--mock_examples=640"])
    assert status == 1 and err.count("\n") == 1
    assert "B_simple is not defined at the end of the 36-step measurement" in err
    assert "lengthen it (--measure_steps) or raise --batch_size" in err
    assert not (tmp_path / "advice.json").exists()


def test_an_odd_batch_is_a_usage_error_before_training(tmp_path):
    # The trainer's noise_statistics splits the batch into two halves on one replica.
    status, _, err = execute(TINY + ["--batch_size=15", f"--output_dir={tmp_path}"])
    assert status == 2 and "Expected an even batch_size >= 2 with noise_statistics" in err
    assert not (tmp_path / "advice.json").exists()


def test_base_batch_must_be_the_small_batch(tmp_path):
    status, _, err = execute(TINY + ["--base_batch_size=32", f"--output_dir={tmp_path}"])
    assert status == 2 and "--base_batch_size equal to --batch_size" in err


def test_the_flagfile_trains_at_the_rule_s_rate_for_any_trusted_lr_multiplier():
    from tests.advisor.test_advice import SCALES  # noqa: PLC0415
    from tfgap.advisor import advise as advise_fn  # noqa: PLC0415
    from tfgap.training import plan_steps  # noqa: PLC0415
    from tfgap.training.build import build_schedule  # noqa: PLC0415

    # The trusted regime: rates (0.08, 0.008) with lr_multiplier 0.25, i.e. 0.02 then 0.002,
    # at batch 50 for 10 epochs of 3600 examples, the drop at epoch 7.
    trusted = TrainConfig(dataset="mnist1d", model="mlp", batch_size=50, base_batch_size=50,
                          lr_values=(0.08, 0.008), lr_boundaries=(7.0,), lr_multiplier=0.25,
                          epochs=10.0, model_dir="/tmp/unused")
    advice = advise_fn(400.0, small_batch_size=50, epochs=10, num_train_examples=3600,
                       learning_rate=0.02, max_batch_size=1600, lr_boundaries=(7.0,),
                       noise_scales=SCALES, momentum=0.9, scaling="eps_opt")
    # At batch 800 (B_crit = B_simple = 400): eps_opt = (1 - 0.9) 0.5 / (1 + 800 / 800) =
    # 0.025, so the multiplier is 0.25 x 0.025 / 0.02 = 0.3125 (the rates 0.08 and 0.008
    # become 0.025 and 0.0025).
    advice = dataclasses.replace(advice, recommended=advice.candidates[4])
    assert advice.recommended.batch_size == 800
    config = advise.recommended_config(trusted, advice)
    assert config.lr_values == (0.08, 0.008) and config.lr_multiplier == 0.3125
    assert (config.lr_scaling, config.warmup_start) == ("none", "zero")
    # The trainer's own schedule: 3600 // 800 = 4 steps per epoch, regime adaptation to
    # S(800) = 80 (1 + 400 / 800) = 120 steps (stretch 120 / 40), the drop at 7 x 4 x stretch.
    plan = plan_steps(config, num_train_examples=3600)
    schedule = build_schedule(config, plan)
    stretch = 120 / 40
    drop = 7 * 4 * stretch
    assert float(schedule(0)) < 0.025 / 2                              # warm-up from 0
    assert float(schedule(round(drop) - 2)) == pytest.approx(0.025)    # eps_opt(800)
    assert float(schedule(plan.total_steps - 1)) == pytest.approx(0.0025)
    # The default rule at the recommended batch 400: gain (1 + 8) / (1 + 1) = 4.5, rate 0.09,
    # multiplier 0.25 x 0.09 / 0.02 = 1.125.
    gain = advise.recommended_config(trusted, advise_fn(
        400.0, small_batch_size=50, epochs=10, num_train_examples=3600, learning_rate=0.02,
        max_batch_size=1600, lr_boundaries=(7.0,), momentum=0.9))
    assert (gain.batch_size, gain.lr_multiplier, gain.lr_scaling) == (400, 1.125, "none")
