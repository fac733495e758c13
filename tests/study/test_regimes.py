"""The regimes differ exactly as their names say (checked against closed forms)."""

import math
import re

import pytest

from tfgap import schedules
from tfgap.study import (
    REGIMES,
    regime_config,
    regime_configs,
    slug,
    small_batch_config,
    study_regimes,
)
from tfgap.study import regimes as regimes_lib
from tfgap.training import TrainConfig, plan_steps

B_S, B_L, B_G, LR, EPOCHS, N = 32, 1024, 32, 0.03, 20, 4000


@pytest.fixture
def base():
    return small_batch_config(dataset="mnist1d", model="mlp", model_dir="/tmp/unused",
                              small_batch_size=B_S, lr=LR, epochs=EPOCHS,
                              lr_boundaries=(14,), lr_decay=0.1, weight_decay=5e-4, seed=3)


def test_names_are_table_1s():
    assert REGIMES == ("SB", "LB", "LB+LR", "LB+LR+GBN", "LB+LR+GBN+RA")
    assert [slug(n) for n in REGIMES] == ["sb", "lb", "lb_lr", "lb_lr_gbn", "lb_lr_gbn_ra"]


def test_small_batch_config_values(base):
    assert base.batch_size == base.base_batch_size == B_S
    assert base.lr_values == pytest.approx((LR, LR * 0.1))
    assert base.lr_boundaries == (14.0,)
    assert (base.ghost_batch_size, base.lr_scaling, base.regime_adaptation) == (0, "none", False)


def test_settings_per_regime(base):
    configs = regime_configs(base, large_batch_size=B_L, ghost_batch_size=B_G)
    assert list(configs) == list(REGIMES)
    expected = {  # batch, lr scaling, ghost, regime adaptation
        "SB": (B_S, "none", 0, False),
        "LB": (B_L, "none", 0, False),
        "LB+LR": (B_L, "sqrt", 0, False),
        "LB+LR+GBN": (B_L, "sqrt", B_G, False),
        "LB+LR+GBN+RA": (B_L, "sqrt", B_G, True),
    }
    for name, config in configs.items():
        got = (config.batch_size, config.lr_scaling, config.ghost_batch_size,
               config.regime_adaptation)
        assert got == expected[name], name
        # Everything else is the baseline's.
        same = config.replace(batch_size=B_S, lr_scaling="none", ghost_batch_size=0,
                              regime_adaptation=False)
        assert same == base, name


def test_base_is_not_modified(base):
    before = base.to_dict()
    regime_configs(base, large_batch_size=B_L, ghost_batch_size=B_G)
    assert base.to_dict() == before


def _schedule(config, steps_per_epoch):
    return schedules.LargeBatchSchedule(
        boundaries=list(config.lr_boundaries), values=list(config.lr_values),
        base_batch_size=config.base_batch_size, batch_size=config.batch_size,
        steps_per_epoch=steps_per_epoch, scaling=config.lr_scaling,
        regime_adaptation=config.regime_adaptation)


def test_learning_rates_and_updates_closed_form(base):
    """Peak rate, breakpoint and number of updates against closed forms."""
    configs = regime_configs(base, large_batch_size=B_L, ghost_batch_size=B_G)
    for name, config in configs.items():
        plan = plan_steps(config, num_train_examples=N)
        batch = B_S if name == "SB" else B_L
        steps_per_epoch = N // batch
        stretch = B_L / B_S if name.endswith("+RA") else 1.0
        assert plan.steps_per_epoch == steps_per_epoch, name
        assert plan.total_steps == math.floor(EPOCHS * stretch * steps_per_epoch + 0.5), name
        peak = LR * (math.sqrt(B_L / B_S) if "+LR" in name else 1.0)
        drop = math.floor(14 * stretch * steps_per_epoch + 0.5)
        schedule = _schedule(config, steps_per_epoch)
        assert float(schedule(0)) == pytest.approx(peak, rel=1e-6), name
        assert float(schedule(drop - 1)) == pytest.approx(peak, rel=1e-6), name
        assert float(schedule(drop)) == pytest.approx(0.1 * peak, rel=1e-6), name
    sb = plan_steps(configs["SB"], num_train_examples=N)
    ra = plan_steps(configs["LB+LR+GBN+RA"], num_train_examples=N)
    lb = plan_steps(configs["LB"], num_train_examples=N)
    assert sb.total_steps == 2500 and lb.total_steps == 60 and ra.total_steps == 1920


def test_bad_inputs(base):
    with pytest.raises(ValueError, match="regime name"):
        regime_config("LB+XYZ", base, large_batch_size=B_L, ghost_batch_size=B_G)
    with pytest.raises(ValueError, match="ghost_batch_size"):
        regime_config("LB", base, large_batch_size=B_L, ghost_batch_size=48)
    with pytest.raises(ValueError, match="large_batch_size"):
        regime_config("LB", base, large_batch_size=16, ghost_batch_size=16)
    with pytest.raises(ValueError, match="TrainConfig"):
        regime_config("LB", {"batch_size": 32}, large_batch_size=B_L, ghost_batch_size=B_G)
    with pytest.raises(ValueError, match="lr_decay"):
        small_batch_config(dataset="mnist1d", model="mlp", model_dir="/tmp/x",
                           small_batch_size=32, lr=0.1, epochs=1, lr_decay=0.0)
    assert isinstance(base, TrainConfig)


def _expected_difference(name, reference):
    """What a row's name adds to its reference's, read from the names alone."""
    added = name
    for part in re.split(r"[ ()+,]+", reference):
        if part:
            added = added.replace(part, "", 1)
    fields = set()
    if "averaged" in added:
        fields.add("moving_update")
    if "bn 0.99" in name and "bn 0.99" not in reference:
        fields.add("bn_momentum")
    if re.search(r"ghost \d+", name):
        fields.add("ghost_batch_size")
    if "LARS" in added:
        fields |= {"optimizer", "lars_eta"}
    if "SAM" in added:
        fields.add("sam_rho")
    if "converged" in added:
        fields.add("regime_adaptation")  # trained up to +RA's length; the runner stops it
    if "LB's updates" in name and "LB's updates" not in reference:
        fields |= {"epochs", "lr_boundaries"}
    if name.startswith("LB") and reference.startswith("SB"):
        fields.add("batch_size")
    for token, field in (("+LR", "lr_scaling"), ("+RA", "regime_adaptation")):
        if token in name and token not in reference:
            fields.add(field)
    if "+GBN" in name and "+GBN" not in reference:
        fields.add("ghost_batch_size")
    return fields


def test_every_row_differs_from_its_reference_only_as_named(base):
    rows = study_regimes(large_batch_size=B_L, ghost_batch_size=B_G)
    configs = regime_configs(base, large_batch_size=B_L, ghost_batch_size=B_G, regimes=None)
    assert list(configs) == [r.name for r in rows]
    for row in rows:
        if row.reference is None:
            assert row.name == "SB"
            continue
        a, b = configs[row.name].to_dict(), configs[row.reference].to_dict()
        differ = {k for k in a if a[k] != b[k]}
        assert differ == _expected_difference(row.name, row.reference), row.name


def test_ablation_values():
    rows = {r.name: r for r in study_regimes(large_batch_size=512, ghost_batch_size=32,
                                             small_batch_size=32)}
    assert [n for n, r in rows.items() if r.group == regimes_lib.GHOST] == [
        "LB+LR+GBN (ghost 64)", "LB+LR+GBN (ghost 128)", "LB+LR+GBN (ghost 256)"]
    assert rows["LB+LR+GBN (ghost 128)"].changes["ghost_batch_size"] == 128
    assert rows["LB+LR+GBN (ghost 128)"].changes["lr_scaling"] == "sqrt"
    assert rows["LB+GBN (averaged, bn 0.99)"].changes["moving_update"] == "averaged"
    assert rows["LB+GBN (averaged, bn 0.99)"].changes["bn_momentum"] == 0.99
    assert rows["LB+LARS"].changes["optimizer"] == "lars"
    assert rows["LB+SAM"].changes["sam_rho"] > 0
    assert rows["SB (converged)"].changes["regime_adaptation"] == 16.0  # B_L / B_S
    converged = [n for n, r in rows.items() if r.until_converged]
    assert converged == ["SB (converged)", "LB (converged)"]
    assert [n for n, r in rows.items() if r.long] == [
        "LB+LR+GBN+RA", "LB+RA", "LB+RA (bn 0.99)", "LB+LR+GBN+RA (bn 0.99)"]
    assert [n for n, r in rows.items() if r.measure] == ["SB (converged)", "LB (converged)"]
    assert [n for n, r in rows.items() if r.curves] == [*REGIMES, "LB+RA", "SB (LB's updates)"]
    assert [n for n, r in rows.items() if r.ablation] == [
        "LB+LR+GBN (ghost 64)", "LB+LR+GBN (ghost 128)", "LB+LR+GBN (ghost 256)", "LB+LARS",
        "LB+SAM"]
    # A ghost sweep at another size keeps only ghosts below B_L that divide it.
    names = [r.name for r in study_regimes(large_batch_size=96, ghost_batch_size=16)
             if r.group == regimes_lib.GHOST]
    assert names == ["LB+LR+GBN (ghost 32)"]  # 64 does not divide 96
    # Without B_S the rows that need it keep their placeholders until a base resolves them.
    unresolved = {r.name: r for r in study_regimes(large_batch_size=512, ghost_batch_size=32)}
    assert repr(unresolved["SB (converged)"].changes["regime_adaptation"]) == "B_L / B_S"


def test_few_updates_and_converged_rows_closed_form(base):
    """SB (LB's updates) makes LB's updates and drops its rate at LB's update; SB (converged)
    has LB (converged)'s rate policy (drop and cap stretched by B_L / B_S)."""
    names = ("LB", "SB (LB's updates)", "SB (converged)", "LB (converged)")
    configs = regime_configs(base, large_batch_size=B_L, ghost_batch_size=B_G, regimes=names)
    n = 4096  # a multiple of B_L: whole epochs at both batches
    plans = {k: plan_steps(c, num_train_examples=n)
             for k, c in configs.items()}
    assert plans["SB (LB's updates)"].total_steps == plans["LB"].total_steps == 80
    for name in ("LB", "SB (LB's updates)"):
        config, plan = configs[name], plans[name]
        drop = math.floor(config.lr_boundaries[0] * plan.steps_per_epoch + 0.5)
        schedule = _schedule(config, plan.steps_per_epoch)
        assert drop == 56
        assert float(schedule(drop - 1)) == pytest.approx(LR) and float(
            schedule(drop)) == pytest.approx(LR * 0.1)
    stretch = B_L / B_S
    for name in ("SB (converged)", "LB (converged)"):
        config, plan = configs[name], plans[name]
        assert plan.epochs == pytest.approx(EPOCHS * stretch), name
        schedule = _schedule(config, plan.steps_per_epoch)
        drop = math.floor(14 * stretch * plan.steps_per_epoch + 0.5)
        assert float(schedule(drop - 1)) == pytest.approx(LR), name
        assert float(schedule(drop)) == pytest.approx(LR * 0.1), name


def test_trainings_share_only_moving_statistics(base):
    rows = study_regimes(large_batch_size=B_L, ghost_batch_size=B_G, small_batch_size=B_S)
    configs = regime_configs(base, large_batch_size=B_L, ghost_batch_size=B_G, regimes=None)
    groups = regimes_lib.trainings(rows, configs)
    assert sorted(r.name for g in groups for r in g.rows) == sorted(r.name for r in rows)
    shared = {g.row.name: [d.name for d in g.derived] for g in groups if g.derived}
    assert shared == {
        "SB": ["SB (bn 0.99)"], "LB": ["LB (bn 0.99)"], "LB+LR": ["LB+LR (bn 0.99)"],
        "LB+LR+GBN": ["LB+LR+GBN (bn 0.99)"], "LB+LR+GBN+RA": ["LB+LR+GBN+RA (bn 0.99)"],
        "LB+RA": ["LB+RA (bn 0.99)"], "SB (LB's updates)": ["SB (LB's updates, bn 0.99)"],
        "LB+GBN": ["LB+GBN (averaged)", "LB+GBN (bn 0.99)", "LB+GBN (averaged, bn 0.99)"]}
    moving_fields = set(regimes_lib.MOVING_STATISTICS_FIELDS)
    for g in groups:
        for d in g.derived:
            a, b = configs[g.row.name].to_dict(), configs[d.name].to_dict()
            assert {k for k in a if a[k] != b[k]} <= moving_fields, d.name
    firsts = [g.row for g in groups]
    for i, a in enumerate(firsts):  # two trainings always differ in more than that
        for b in firsts[i + 1:]:
            x, y = configs[a.name].to_dict(), configs[b.name].to_dict()
            differ = {k for k in x if x[k] != y[k]} - moving_fields
            assert differ or a.until_converged != b.until_converged, (a.name, b.name)


def test_slugs_are_distinct_file_names():
    rows = study_regimes(large_batch_size=512, ghost_batch_size=32)
    slugs = [slug(r.name) for r in rows]
    assert len(set(slugs)) == len(slugs)
    assert all(re.fullmatch(r"[a-z0-9_]+", s) for s in slugs)
    assert slug("LB+GBN (averaged, bn 0.99)") == "lb_gbn_averaged_bn_0_99"
