"""Rows that differ only in BN's moving-statistics settings come from one training: the
statistics `MovingStatistics` keeps beside the model's own are those of a run retrained with
the other settings, bit for bit (the reference is that retrained run)."""

import keras
import numpy as np
import pytest

from tfgap.layers import GhostBatchNormalization
from tfgap.study import moving, regime_configs, small_batch_config
from tfgap.training import train

B_S, B_L, B_G = 16, 128, 16


def _base(tmp_path):
    return small_batch_config(
        dataset="mnist1d", model="mlp", model_dir=str(tmp_path / "unused"),
        small_batch_size=B_S, lr=0.05, epochs=2, lr_boundaries=(1,), mock_data=True,
        mock_examples=284, model_options={"mlp_width": 16, "mlp_depth": 2},
        preemption=False, strategy="one_device", verbose=0)


def _trained(config, model_dir, callbacks=()):
    result = train(config.replace(model_dir=str(model_dir)), callbacks=list(callbacks))
    return result.model, result


@pytest.mark.parametrize("source, others", [
    ("LB+GBN", ("LB+GBN (averaged)", "LB+GBN (averaged, bn 0.99)")),
    ("LB", ("LB (bn 0.99)",)),
])
def test_kept_statistics_are_those_of_the_retrained_rows(tmp_path, source, others):
    configs = regime_configs(_base(tmp_path), large_batch_size=B_L, ghost_batch_size=B_G,
                             regimes=(source, *others))
    rules = {n: (configs[n].bn_momentum, configs[n].moving_update) for n in others}
    tracker = moving.MovingStatistics(rules)
    model, result = _trained(configs[source], tmp_path / "source", [tracker])
    assert tracker.complete
    kept = tracker.statistics()
    own = moving.read_statistics(model)
    for name in others:
        retrained, other = _trained(configs[name], tmp_path / name.replace(" ", "_"))
        assert other["train"]["loss"] == result["train"]["loss"]  # the same training
        reference = moving.read_statistics(retrained)
        assert set(kept[name]) == set(reference) == set(own) and len(own) >= 2
        for layer, stats in reference.items():
            for key in moving.STATISTICS:
                np.testing.assert_array_equal(kept[name][layer][key], stats[key])
        # The rule matters: another rule's statistics differ from the model's own.
        assert not all(np.array_equal(kept[name][layer]["moving_mean"], own[layer]["moving_mean"])
                       for layer in own)
    # Swapping gives the model a retrained row's statistics (same predictions), then restores.
    x = np.random.default_rng(0).normal(size=(8, 40)).astype("float32")
    with moving.swapped(model, kept[others[-1]]):
        np.testing.assert_array_equal(model(x, training=False).numpy(),
                                      retrained(x, training=False).numpy())
    for layer, stats in moving.read_statistics(model).items():
        np.testing.assert_array_equal(stats["moving_mean"], own[layer]["moving_mean"])
    path = tmp_path / "stats.npz"
    moving.save(path, kept)
    loaded = moving.load(path)
    for name in others:
        for layer in own:
            np.testing.assert_array_equal(loaded[name][layer]["moving_variance"],
                                          kept[name][layer]["moving_variance"])


def test_rules_against_their_closed_forms():
    """One training call of a 2-ghost layer, each rule by hand (momentum m, ghosts 1 and 2)."""
    model = keras.Sequential([keras.Input((2,)), GhostBatchNormalization(
        virtual_batch_size=2, momentum=0.9, name="gbn")])
    plain = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(
        momentum=0.9, name="bn")])
    m = 0.8
    ghost = moving.MovingStatistics({"seq": (m, "sequential"), "avg": (m, "averaged"),
                                     "full": (m, "full_batch")})
    keras_bn = moving.MovingStatistics({"k": (m, "sequential")})  # plain BN: one step
    ghost.set_model(model)
    keras_bn.set_model(plain)
    x = np.array([[0, 1], [2, 5], [4, 1], [10, 3]], "float32")
    model(x, training=True)
    plain(x, training=True)
    s1, s2 = x[:2].mean(0), x[2:].mean(0)
    v1, v2 = x[:2].var(0), x[2:].var(0)
    got = ghost.statistics()
    # Initial moving mean 0, variance 1.
    np.testing.assert_allclose(got["seq"]["gbn"]["moving_mean"],
                               m * (1 - m) * s1 + (1 - m) * s2, rtol=1e-6)
    np.testing.assert_allclose(got["seq"]["gbn"]["moving_variance"],
                               m * m + m * (1 - m) * v1 + (1 - m) * v2, rtol=1e-6)
    np.testing.assert_allclose(got["avg"]["gbn"]["moving_variance"],
                               m + (1 - m) * (v1 + v2) / 2, rtol=1e-6)
    np.testing.assert_allclose(got["full"]["gbn"]["moving_variance"],
                               m + (1 - m) * x.var(0), rtol=1e-6)
    np.testing.assert_allclose(keras_bn.statistics()["k"]["bn"]["moving_mean"],
                               (1 - m) * x.mean(0), rtol=1e-6)
    # The model's own statistics follow its own rule (sequential, 0.9), untouched.
    np.testing.assert_allclose(model.layers[0].moving_mean.numpy(),
                               0.9 * 0.1 * s1 + 0.1 * s2, rtol=1e-6)


def test_a_resumed_run_has_no_statistics_and_bad_rules_are_refused():
    tracker = moving.MovingStatistics({"a": (0.99, "sequential")})
    tracker.on_train_batch_end(4, {"step": 5})  # the first step seen is not step 1
    assert not tracker.complete
    with pytest.raises(RuntimeError, match="resumed"):
        tracker.statistics()
    with pytest.raises(ValueError, match="momentum"):
        moving.MovingStatistics({"a": (1.0, "sequential")})
    with pytest.raises(ValueError, match="moving_update"):
        moving.MovingStatistics({"a": (0.9, "mean")})
    model = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(name="bn")])
    with pytest.raises(ValueError, match="exactly the model's BN layers"):
        with moving.swapped(model, {}):
            pass
