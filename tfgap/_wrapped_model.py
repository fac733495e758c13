"""Saving a `keras.Model` that wraps another one (`tfgap.SAM`, `GradientStatisticsModel`).

Such a wrapper keeps the wrapped model as `inner_model`; its config holds that
model serialized under `"model"` beside the wrapper's own arguments, and its
`from_config` rebuilds both.
"""

import keras


def wrapper_config(config, inner_model, **arguments):
    """`config` (the wrapper's `super().get_config()`) with the wrapped model and `arguments`.

    Example:

    >>> inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> config = wrapper_config({"name": "w"}, inner, rho=0.05)
    >>> sorted(config), config["rho"]
    (['model', 'name', 'rho'], 0.05)
    """
    config.update({"model": keras.saving.serialize_keras_object(inner_model), **arguments})
    return config


def from_wrapper_config(cls, config, custom_objects=None):
    """`cls(inner_model, **arguments)` from a config `wrapper_config` wrote."""
    config = dict(config)
    model = keras.saving.deserialize_keras_object(config.pop("model"),
                                                  custom_objects=custom_objects)
    return cls(model, **config)
