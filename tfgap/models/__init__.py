"""The networks of the papers, with the normalization layer injected.

`build_model(name, *, num_classes, input_shape, ghost_batch_size=0, ...)`
builds F1, Keskar's C1-C4, ResNet-44, WRN-16-4, AlexNet-BN, ResNet-50 or the
MNIST-1D MLP as a functional Keras model returning logits, with every norm
layer a `tfgap.layers.GhostBatchNormalization`. `available_models()` lists the
names; `model_options(name)` the network-specific keyword options.
"""

from tfgap.models.registry import available_models, build_model, model_options
from tfgap.models.resnet_cifar import ZeroPadShortcut

__all__ = ["ZeroPadShortcut", "available_models", "build_model", "model_options"]
