"""The search space: ghost batch candidates and regime-adaptation factors, against brute force."""

import math

import keras_tuner
import numpy as np
import pytest

from tfgap.training import TrainConfig
from tfgap.tuning import GhostBatchHyperModel, ghost_batch_candidates, regime_adaptation_candidates


@pytest.mark.parametrize("batch", [1, 7, 16, 48, 128, 256, 360, 4096])
@pytest.mark.parametrize("floor", [1, 8, 16])
def test_ghost_candidates_are_the_divisors_above_the_floor(batch, floor):
    sizes = np.arange(1, batch + 1)
    divisors = sizes[batch % sizes == 0]
    expected = [int(d) for d in divisors if floor <= d < batch]
    assert ghost_batch_candidates(batch, floor) == [0] + expected
    for ghost in expected:
        assert batch % ghost == 0 and ghost >= floor
    if expected:
        assert ghost_batch_candidates(batch, floor, include_plain_bn=False) == expected
    else:
        with pytest.raises(ValueError, match="divisor"):
            ghost_batch_candidates(batch, floor, include_plain_bn=False)


@pytest.mark.parametrize("bad", [0, -4, 2.5, True, "16"])
def test_ghost_candidates_reject_bad_input(bad):
    with pytest.raises(ValueError, match="Received"):
        ghost_batch_candidates(bad)
    with pytest.raises(ValueError, match="Received"):
        ghost_batch_candidates(64, bad)


@pytest.mark.parametrize("batch,base", [(128, 128), (64, 128), (4096, 128), (8192, 256),
                                        (3000, 1000), (384, 128)])
def test_regime_factors(batch, base):
    k = batch / base
    factors = regime_adaptation_candidates(batch, base)
    assert factors[0] == 1.0 and factors[-1] == max(1.0, k)
    assert all(f <= max(k, 1.0) for f in factors)
    powers = [f for f in factors if math.log2(f).is_integer()]
    assert len(powers) == (int(math.log2(k)) + 1 if k >= 1 else 1)


def test_hypermodel_space_follows_the_replicas_and_the_config(tmp_path, two_cpus):
    config = TrainConfig(dataset="mnist", model="mlp", model_dir=str(tmp_path), epochs=1,
                         batch_size=64, lr_multiplier=2.0, model_options={"mlp_width": 8})
    hm = GhostBatchHyperModel(config, strategy=two_cpus, trials_dir=str(tmp_path),
                              min_ghost_batch_size=8, lr_multiplier_range=(0.5, 0.5),
                              tune_regime_adaptation=True)
    assert hm.per_replica_batch == 32 and hm.ghost_choices == [0, 8, 16]
    hp = keras_tuner.HyperParameters()
    model = hm.build(hp)
    assert hp.values["ghost_batch_size"] == 0
    hp.values["ghost_batch_size"] = 16
    model = hm.build(hp)
    ghosts = {layer.virtual_batch_size for layer in model.layers
              if hasattr(layer, "virtual_batch_size")}
    assert ghosts == {16}
    trial = hm.trial_config(hp, trial_id="07", epochs=3)
    assert trial.ghost_batch_size == 16 and trial.lr_multiplier == 2.0 * 0.5
    assert trial.epochs == 3.0 and trial.export_dir is None
    assert trial.model_dir == str(tmp_path / "07")
    assert trial.regime_adaptation == 1.0  # the first (default) of 64/128 -> [1]
    with pytest.raises(ValueError, match="lr_multiplier_range"):
        GhostBatchHyperModel(config, trials_dir=str(tmp_path), lr_multiplier_range=(2, 1))
