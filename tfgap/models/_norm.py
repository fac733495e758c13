"""The one place where tfgap's networks create their normalization layers.

Every network in `tfgap.models` asks this factory for its norm layers, so
switching a whole network between plain Batch Normalization and Ghost Batch
Normalization (Hoffer et al. 2017) is one argument, `ghost_batch_size`, and no
network can forget a layer.
"""

from tfgap.layers import GhostBatchNormalization

# PyTorch's default, used by every reference implementation of these networks
# (Keras' own default is 1e-3).
EPSILON = 1e-5


def make_norm(*, ghost_batch_size, moving_update, momentum, epsilon=EPSILON):
    """Returns `norm(name, zero_gamma=False) -> GhostBatchNormalization`.

    Args:
        ghost_batch_size: int >= 0. The ghost (virtual) batch size; 0 gives
            `virtual_batch_size=None`, i.e. plain Batch Normalization.
        moving_update: how the moving statistics combine the ghost batches
            (`GhostBatchNormalization`'s `moving_update`).
        momentum: the moving-average momentum, Keras convention (weight on the
            old value; PyTorch's `momentum=0.1` is Keras' 0.9).
        epsilon: variance epsilon.
    """
    virtual_batch_size = int(ghost_batch_size) if ghost_batch_size else None

    def norm(name, *, zero_gamma=False):
        return GhostBatchNormalization(
            virtual_batch_size=virtual_batch_size,
            moving_update=moving_update,
            momentum=momentum,
            epsilon=epsilon,
            gamma_initializer="zeros" if zero_gamma else "ones",
            name=name,
        )

    return norm
