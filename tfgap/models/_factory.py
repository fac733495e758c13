"""Layer factory shared by the networks: initializers, weight decay, seeds.

A network never instantiates `Conv2D`, `Dense`, `Dropout` or a norm layer
directly; it asks a `LayerFactory`, which applies the conventions of the
reference code (Hoffer et al.'s bigBatch, torchvision) once:

- convolution kernels: He normal on fan-out, `N(0, 2 / (k * k * filters))`,
  as in the reference code's `init_model`; no bias (a norm layer follows);
- dense kernels: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, PyTorch's default; no
  bias before a norm layer; a zero-initialized bias on the logits layer;
- coupled L2 weight decay on every kernel (never on biases, gamma or beta):
  `keras.regularizers.L2(weight_decay / 2)`, whose gradient `weight_decay * w`
  is PyTorch SGD's `weight_decay`;
- the logits layer computes in float32, so a `mixed_float16` global policy
  still yields float32 logits;
- with an integer `seed`, every initializer and dropout layer gets its own
  seed `seed + i` (i counts the layers in build order): the same call builds
  the same weights.
"""

import keras

from tfgap.models._norm import make_norm


class LayerFactory:
    """Creates the layers of one network (see the module docstring)."""

    def __init__(self, *, ghost_batch_size, moving_update, weight_decay, bn_momentum, seed):
        self._norm = make_norm(
            ghost_batch_size=ghost_batch_size,
            moving_update=moving_update,
            momentum=bn_momentum,
        )
        self._weight_decay = float(weight_decay)
        self._seed = seed
        self._count = 0

    def _next_seed(self):
        if self._seed is None:
            return None
        self._count += 1
        return int(self._seed) + self._count

    def _regularizer(self):
        if self._weight_decay == 0.0:
            return None
        return keras.regularizers.L2(self._weight_decay / 2.0)

    def conv(self, filters, kernel_size, *, name, strides=1, padding="same"):
        """A bias-free `Conv2D` with He fan-out normal initialization."""
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=False,
            kernel_initializer=keras.initializers.VarianceScaling(
                2.0, mode="fan_out", distribution="untruncated_normal", seed=self._next_seed()
            ),
            kernel_regularizer=self._regularizer(),
            name=name,
        )

    def dense(self, units, *, name, use_bias=False, dtype=None):
        """A `Dense` layer with PyTorch's default uniform initialization."""
        kwargs = {} if dtype is None else {"dtype": dtype}
        return keras.layers.Dense(
            units,
            use_bias=use_bias,
            kernel_initializer=keras.initializers.VarianceScaling(
                1.0 / 3.0, mode="fan_in", distribution="uniform", seed=self._next_seed()
            ),
            bias_initializer="zeros",
            kernel_regularizer=self._regularizer(),
            name=name,
            **kwargs,
        )

    def logits(self, num_classes, *, name="logits"):
        """The float32 output layer (with bias): raw logits, no softmax."""
        return self.dense(num_classes, name=name, use_bias=True, dtype="float32")

    def norm(self, name, *, zero_gamma=False):
        """A `GhostBatchNormalization` (plain BN when the ghost size is 0)."""
        return self._norm(name, zero_gamma=zero_gamma)

    def dropout(self, rate, *, name):
        """A seeded `Dropout` layer."""
        return keras.layers.Dropout(rate, seed=self._next_seed(), name=name)
