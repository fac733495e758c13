"""Model surgery: swap every BatchNormalization of a model for GBN."""

import keras

from tfgap.layers.ghost_batch_normalization import GhostBatchNormalization


def ghostify(model, virtual_batch_size, moving_update="sequential"):
    """Returns a copy of `model` with Ghost Batch Normalization everywhere.

    Every `keras.layers.BatchNormalization` of a functional or `Sequential`
    model (nested models included) is replaced by a
    `GhostBatchNormalization` with the same configuration plus
    `virtual_batch_size` and `moving_update`; all weights (gamma, beta and
    the moving statistics included) are carried over, so inference outputs
    are unchanged. The original model is not modified. Use it to apply GBN
    to models you did not write, such as `keras.applications` models.

    Args:
        model: A functional or `Sequential` `keras.Model`. Subclassed models
            cannot be rebuilt layer by layer: construct them with
            `GhostBatchNormalization` directly.
        virtual_batch_size: Positive integer or `None`, the ghost batch size
            (see `GhostBatchNormalization`).
        moving_update: `"sequential"`, `"averaged"` or `"full_batch"`.

    Returns:
        A new, uncompiled `keras.Model`.

    Example:

    >>> import keras, numpy as np
    >>> from keras import ops
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4),
    ...                           keras.layers.BatchNormalization()])
    >>> ghosted = ghostify(model, virtual_batch_size=32)
    >>> type(ghosted.layers[-1]).__name__, ghosted.layers[-1].virtual_batch_size
    ('GhostBatchNormalization', 32)
    >>> x = np.ones((3, 8), "float32")
    >>> bool(np.allclose(ops.convert_to_numpy(model(x)), ops.convert_to_numpy(ghosted(x))))
    True
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` must be a keras.Model. Received: {type(model).__name__}"
        )
    if not isinstance(model, keras.Sequential) and not _is_functional(model):
        raise ValueError(
            "`ghostify` needs a functional or Sequential model, whose layers "
            f"can be rebuilt. Received a subclassed model of type "
            f"{type(model).__name__}; build it with GhostBatchNormalization "
            "directly instead."
        )
    # Validates the arguments once, before any cloning, with the layer's
    # own error messages.
    GhostBatchNormalization(virtual_batch_size=virtual_batch_size, moving_update=moving_update)

    def swap(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            config = layer.get_config()
            config.update(virtual_batch_size=virtual_batch_size, moving_update=moving_update)
            try:
                return GhostBatchNormalization(**config)
            except ValueError as error:
                raise ValueError(f"Cannot ghostify layer {layer.name!r}: {error}") from error
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(model, clone_function=swap, recursive=True)
    clone.set_weights(model.get_weights())
    return clone


def _is_functional(model):
    # keras.Model(inputs, outputs) and keras.applications models are
    # instances of Keras' Functional class (not exported publicly).
    return any(cls.__name__ == "Functional" for cls in type(model).__mro__)
