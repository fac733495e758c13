"""Shared set-up of the GhostBatchNormalization tests: layers and inputs that expose mistakes."""

import numpy as np

from tfgap import GhostBatchNormalization

MOMENTUM = 0.8
EPSILON = 1e-3


def make_layer(shape, axis, virtual_batch_size, moving_update, seed=0, **kwargs):
    """A built layer whose gamma, beta and moving statistics are not trivial."""
    layer = GhostBatchNormalization(
        virtual_batch_size=virtual_batch_size, moving_update=moving_update, axis=axis,
        momentum=MOMENTUM, epsilon=EPSILON, **kwargs)
    layer.build(shape)
    rng = np.random.default_rng(seed)
    channels = shape[axis]
    layer.gamma.assign(rng.uniform(0.5, 2.0, channels))
    layer.beta.assign(rng.normal(size=channels))
    layer.moving_mean.assign(rng.normal(size=channels))
    layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels))
    return layer


def layer_state(layer):
    """The layer's gamma, beta and moving statistics as NumPy arrays."""
    return dict(gamma=layer.gamma.numpy(), beta=layer.beta.numpy(),
                moving_mean=layer.moving_mean.numpy(),
                moving_variance=layer.moving_variance.numpy())


def ghost_inputs(shape, seed):
    """Inputs whose examples have different offsets, so wrong ghost slicing shows."""
    rng = np.random.default_rng(seed)
    offsets = np.linspace(-3, 3, shape[0]).reshape((-1,) + (1,) * (len(shape) - 1))
    return (rng.normal(size=shape) * 2.0 + offsets).astype("float32")
