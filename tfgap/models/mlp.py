"""Fully connected networks: Keskar's F1 (MNIST) and the MNIST-1D study MLP.

Both are stacks of `Dense -> norm -> ReLU` blocks over the flattened input:

    h_0 = flatten(x)
    h_i = relu(GBN(W_i h_{i-1}))          i = 1..depth
    logits = W_out h_depth + b_out

The hidden `Dense` layers carry no bias: the normalization that follows
subtracts the (ghost) batch mean, which cancels any bias exactly.

F1 is the network of Keskar et al. 2017 (Table 1, "F1") and of Hoffer et al.
2017's reference code (`models/mnist_f1.py`): 784-5x[512, BN, ReLU]-10. The MLP
is the small model of tfgap's generalization-gap study on MNIST-1D (Greydanus
2020): fast enough to train five regimes over several seeds on a laptop CPU.
"""

import keras

from tfgap import _validation as checks


def _dense_stack(factory, *, num_classes, input_shape, width, depth, name):
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i in range(1, depth + 1):
        x = factory.dense(width, name=f"dense{i}")(x)
        x = factory.norm(f"norm{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    outputs = factory.logits(num_classes)(x)
    return keras.Model(inputs, outputs, name=name)


def f1(factory, *, num_classes, input_shape):
    """Keskar et al.'s F1: flatten, 5 x [Dense 512, norm, ReLU], Dense.

    Paper: Keskar et al. 2017, "On Large-Batch Training for Deep Learning:
    Generalization Gap and Sharp Minima" (network F1); Hoffer et al. 2017's
    reference code. With 784 inputs and 10 classes it has
    784*512 + 4*512*512 + 512*10 + 10 kernel/bias weights and 5 x 2 x 512
    trainable norm weights (1,460,234 trainable parameters).
    """
    return _dense_stack(
        factory, num_classes=num_classes, input_shape=input_shape, width=512, depth=5, name="f1"
    )


def mlp(factory, *, num_classes, input_shape, mlp_width=256, mlp_depth=3):
    """The MNIST-1D study model: `mlp_depth` x [Dense mlp_width, norm, ReLU], Dense.

    Args:
        mlp_width: int >= 1, width of every hidden layer (default 256).
        mlp_depth: int >= 1, number of hidden layers (default 3).

    With 40 inputs, 10 classes and the defaults it has 40*256 + 2*256*256 +
    256*10 + 10 weights plus 3 x 2 x 256 norm weights (145,418 trainable).
    """
    checks.integer("mlp_width", mlp_width, minimum=1)
    checks.integer("mlp_depth", mlp_depth, minimum=1)
    return _dense_stack(
        factory,
        num_classes=num_classes,
        input_shape=input_shape,
        width=mlp_width,
        depth=mlp_depth,
        name="mlp",
    )
