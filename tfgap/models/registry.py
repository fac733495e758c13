"""`build_model` and `available_models`: the networks of the papers by name."""

import inspect
import numbers

from tfgap.models import alexnet, cnn1d, keskar, mlp, resnet50, resnet_cifar, wrn
from tfgap.models._factory import LayerFactory

# name -> (builder, whether the network is convolutional, i.e. needs (H, W, C) inputs)
_MODELS = {
    "f1": (mlp.f1, False),
    "mlp": (mlp.mlp, False),
    "cnn1d": (cnn1d.cnn1d, False),  # 1-D: (length,) or (length, channels) inputs
    "c1": (keskar.c1, True),
    "c2": (keskar.c2, True),
    "c3": (keskar.c3, True),
    "c4": (keskar.c4, True),
    "resnet44": (resnet_cifar.resnet44, True),
    "wrn16_4": (wrn.wrn16_4, True),
    "alexnet_bn": (alexnet.alexnet_bn, True),
    "resnet50": (resnet50.resnet50, True),
}


def available_models():
    """The names accepted by `build_model`, sorted.

    Example:

    >>> import tfgap.models
    >>> tfgap.models.available_models()
    ['alexnet_bn', 'c1', 'c2', 'c3', 'c4', 'cnn1d', 'f1', 'mlp', 'resnet44', 'resnet50',
     'wrn16_4']
    """
    return sorted(_MODELS)


def model_options(name):
    """The extra keyword options of one network, with their defaults.

    Example:

    >>> import tfgap.models
    >>> tfgap.models.model_options("mlp")
    {'mlp_width': 256, 'mlp_depth': 3}
    """
    builder, _ = _lookup(name)
    return {
        p.name: p.default
        for p in inspect.signature(builder).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.name not in ("num_classes", "input_shape")
    }


def _lookup(name):
    if not isinstance(name, str) or name not in _MODELS:
        raise ValueError(
            f"Unknown model. Expected one of {available_models()}. Received: name={name!r}"
        )
    return _MODELS[name]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _validate(name, num_classes, input_shape, ghost_batch_size, weight_decay, bn_momentum, seed):
    _, convolutional = _lookup(name)
    if not _is_int(num_classes) or num_classes < 1:
        raise ValueError(
            f"Expected `num_classes` to be an integer >= 1. Received: num_classes={num_classes!r}"
        )
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if not shape or not all(_is_int(d) and d >= 1 for d in shape):
        raise ValueError(
            "Expected `input_shape` to be a non-empty tuple of positive integers (without the "
            f"batch axis). Received: input_shape={input_shape!r}"
        )
    if convolutional and len(shape) != 3:
        raise ValueError(
            f"Expected `input_shape` of model {name!r} to be (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    if not _is_int(ghost_batch_size) or ghost_batch_size < 0:
        raise ValueError(
            "Expected `ghost_batch_size` to be an integer >= 0 (0 = plain batch normalization). "
            f"Received: ghost_batch_size={ghost_batch_size!r}"
        )
    if not _is_real(weight_decay) or not weight_decay >= 0.0:
        raise ValueError(
            f"Expected `weight_decay` to be a float >= 0. Received: weight_decay={weight_decay!r}"
        )
    if not _is_real(bn_momentum) or not 0.0 <= bn_momentum < 1.0:
        raise ValueError(
            f"Expected `bn_momentum` in [0, 1). Received: bn_momentum={bn_momentum!r}"
        )
    if seed is not None and not _is_int(seed):
        raise ValueError(f"Expected `seed` to be None or an integer. Received: seed={seed!r}")
    return tuple(int(d) for d in shape)


def build_model(
    name,
    *,
    num_classes,
    input_shape,
    ghost_batch_size=0,
    moving_update="sequential",
    weight_decay=0.0,
    bn_momentum=0.9,
    seed=None,
    **options,
):
    """Builds one of the papers' networks as a functional Keras model returning logits.

    Every normalization layer is a `tfgap.layers.GhostBatchNormalization`, so
    one argument switches the whole network between plain Batch Normalization
    (`ghost_batch_size=0`) and Ghost Batch Normalization (Hoffer et al. 2017):
    each contiguous ghost batch of `ghost_batch_size` examples is normalized
    with its own statistics during training; inference uses the moving
    statistics, at any batch size.

    Weight decay is coupled L2 on every kernel (not on biases or norm
    parameters), as PyTorch SGD's `weight_decay`:

        model.losses = [weight_decay / 2 * ||W||^2 for each kernel W]
        gradient of their sum = weight_decay * W

    The model takes preprocessed float32 inputs and returns float32 logits (no
    softmax), also under a `mixed_float16` global policy.

    | name | network | paper |
    |---|---|---|
    | "f1" | 5 x [dense 512, norm, ReLU] | Keskar et al. 2017 (MNIST) |
    | "mlp" | `mlp_depth` x [dense `mlp_width`, norm, ReLU] | tfgap's MNIST-1D study |
    | "cnn1d" | `cnn_depth` x [conv1d, norm, ReLU, max-pool] | tfgap's MNIST-1D study |
    | "c1", "c3" | shallow conv net | Keskar et al. 2017 (CIFAR-10/100) |
    | "c2", "c4" | VGG-16 with norm and dropout | Keskar et al. 2017 (CIFAR-10/100) |
    | "resnet44" | CIFAR ResNet, 3 x 7 basic blocks | He et al. 2016 |
    | "wrn16_4" | Wide ResNet 16-4, pre-activation | Zagoruyko & Komodakis 2016 |
    | "alexnet_bn" | AlexNet with norm layers | Hoffer et al. 2017 (ImageNet) |
    | "resnet50" | ResNet-50, bottleneck v1.5 | He et al. 2016 (ImageNet) |

    Args:
        name: str, one of `available_models()`.
        num_classes: int >= 1, the number of logits.
        input_shape: tuple of positive ints without the batch axis, e.g.
            `(32, 32, 3)`; convolutional networks need `(height, width,
            channels)`, fully connected ones flatten any shape.
        ghost_batch_size: int >= 0, the ghost batch size of every norm layer
            (`virtual_batch_size`); 0 (default) is plain batch normalization.
        moving_update: how a norm layer folds its ghost batches' statistics
            into the moving statistics; passed to `GhostBatchNormalization`
            ("sequential", the default, is the paper's Algorithm 1).
        weight_decay: float >= 0, coupled L2 coefficient (default 0).
        bn_momentum: float in [0, 1), the norm layers' moving-average momentum
            in Keras' convention (default 0.9 = PyTorch's 0.1).
        seed: None or int; with an int, the initial weights and dropout masks
            are reproducible.
        **options: network-specific options, see `model_options(name)`:
            `mlp_width`, `mlp_depth` ("mlp"); `cnn_filters`, `cnn_depth`,
            `cnn_kernel` ("cnn1d"); `shortcut`,
            `zero_init_residual` ("resnet44"); `dropout_rate` ("wrn16_4");
            `zero_init_residual` ("resnet50").

    Returns:
        An unbuilt-optimizer functional `keras.Model` named `name`.

    Example:

    >>> import numpy as np
    >>> import tfgap.models
    >>> model = tfgap.models.build_model(
    ...     "mlp", num_classes=10, input_shape=(40,), ghost_batch_size=32,
    ...     weight_decay=1e-4, seed=0)
    >>> model.count_params()
    146954
    >>> [layer.virtual_batch_size for layer in model.layers
    ...  if isinstance(layer, tfgap.layers.GhostBatchNormalization)]
    [32, 32, 32]
    >>> tuple(model(np.zeros((4, 40), "float32")).shape)
    (4, 10)
    """
    shape = _validate(
        name, num_classes, input_shape, ghost_batch_size, weight_decay, bn_momentum, seed
    )
    accepted = model_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for model {name!r}. Expected a subset of "
            f"{sorted(accepted)}. Received: {options!r}"
        )
    builder, _ = _MODELS[name]
    factory = LayerFactory(
        ghost_batch_size=int(ghost_batch_size),
        moving_update=moving_update,
        weight_decay=float(weight_decay),
        bn_momentum=float(bn_momentum),
        seed=None if seed is None else int(seed),
    )
    return builder(factory, num_classes=int(num_classes), input_shape=shape, **options)
