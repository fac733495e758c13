"""An independent NumPy reference for Ghost Batch Normalization.

It loops over contiguous ghost batches, as the paper's Algorithm 1 does, in
float64, sharing nothing with the vectorized layer.
"""

import numpy as np


def ghost_bn_reference(x, virtual_batch_size, *, axis, gamma, beta, moving_mean,
                       moving_variance, momentum, epsilon, moving_update):
    """Returns (outputs, new_moving_mean, new_moving_variance)."""
    x = np.asarray(x, np.float64)
    rank = x.ndim
    channel = axis % rank
    reduce = tuple(a for a in range(rank) if a != channel)
    shape = [1] * rank
    shape[channel] = -1
    size = virtual_batch_size or len(x)
    outputs = np.empty_like(x)
    means, variances, sizes = [], [], []
    for start in range(0, len(x), size):
        chunk = x[start:start + size]
        mu = chunk.mean(axis=reduce)
        var = ((chunk - mu.reshape(shape)) ** 2).mean(axis=reduce)
        outputs[start:start + size] = (
            gamma.reshape(shape) * (chunk - mu.reshape(shape))
            / np.sqrt(var.reshape(shape) + epsilon) + beta.reshape(shape)
        )
        means.append(mu)
        variances.append(var)
        sizes.append(len(chunk))
    mm = np.asarray(moving_mean, np.float64)
    mv = np.asarray(moving_variance, np.float64)
    m = momentum
    if moving_update == "sequential":
        for mu, var in zip(means, variances):
            mm = mm * m + mu * (1 - m)
            mv = mv * m + var * (1 - m)
    elif moving_update == "averaged":
        w = np.asarray(sizes, np.float64) / len(x)
        mm = mm * m + (1 - m) * sum(wi * mu for wi, mu in zip(w, means))
        mv = mv * m + (1 - m) * sum(wi * v for wi, v in zip(w, variances))
    elif moving_update == "full_batch":
        mm = mm * m + (1 - m) * x.mean(axis=reduce)
        mv = mv * m + (1 - m) * x.var(axis=reduce)
    else:
        raise ValueError(moving_update)
    return outputs, mm, mv
