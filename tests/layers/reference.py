"""An independent NumPy reference for Ghost Batch Normalization.

It loops over contiguous ghost batches, as the paper's Algorithm 1 does, in
float64, sharing nothing with the vectorized layer.
"""

import numpy as np


def ghost_bn_reference(x, virtual_batch_size, *, axis, gamma, beta, moving_mean,
                       moving_variance, momentum, epsilon, moving_update, mask=None,
                       shards=1):
    """Returns (outputs, new_moving_mean, new_moving_variance).

    `mask` (optional) has the shape of `x` without its last axis and is
    broadcast along it, as in `keras.layers.BatchNormalization`: a ghost's
    statistics are the mean and variance of its unmasked values, a ghost with
    no unmasked value has statistics 0 and 0 and leaves the moving statistics
    alone, and so does a shard with no unmasked value.

    `shards` splits the batch into that many equal parts, as data-parallel
    devices do: each part is ghosted on its own, follows the moving-statistics
    rule on its own, and the result is the mean over the parts.
    """
    x = np.asarray(x, np.float64)
    rank = x.ndim
    channel = axis % rank
    reduce = tuple(a for a in range(rank) if a != channel)
    shape = [1] * rank
    shape[channel] = -1
    if mask is None:
        weights = np.ones_like(x)
    else:
        weights = np.broadcast_to(np.asarray(mask, bool)[..., None], x.shape).astype(np.float64)
    m = momentum
    shard_size = len(x) // shards
    assert shard_size * shards == len(x)
    size = virtual_batch_size or shard_size
    outputs = np.empty_like(x)
    new_means, new_variances = [], []
    for first in range(0, len(x), shard_size):
        mm = np.asarray(moving_mean, np.float64).copy()
        mv = np.asarray(moving_variance, np.float64).copy()
        stats = []
        for start in range(first, first + shard_size, size):
            stop = min(start + size, first + shard_size)
            chunk, w = x[start:stop], weights[start:stop]
            count = w.sum(axis=reduce)
            safe = np.maximum(count, 1.0)
            mu = (w * chunk).sum(axis=reduce) / safe
            var = (w * (chunk - mu.reshape(shape)) ** 2).sum(axis=reduce) / safe
            outputs[start:stop] = (
                gamma.reshape(shape) * (chunk - mu.reshape(shape))
                / np.sqrt(var.reshape(shape) + epsilon) + beta.reshape(shape)
            )
            stats.append((mu, var, count))
        if moving_update == "sequential":
            for mu, var, count in stats:  # one ordinary step per non-empty ghost
                mm = np.where(count > 0, mm * m + mu * (1 - m), mm)
                mv = np.where(count > 0, mv * m + var * (1 - m), mv)
        else:
            total = sum(count for _, _, count in stats)
            if moving_update == "averaged":
                mu = sum(count * mu for mu, _, count in stats) / np.maximum(total, 1.0)
                var = sum(count * var for _, var, count in stats) / np.maximum(total, 1.0)
            elif moving_update == "full_batch":
                # The moments of the shard's unmasked values, taken directly.
                part = x[first:first + shard_size]
                w = weights[first:first + shard_size]
                mu = (w * part).sum(axis=reduce) / np.maximum(total, 1.0)
                var = ((w * (part - mu.reshape(shape)) ** 2).sum(axis=reduce)
                       / np.maximum(total, 1.0))
            else:
                raise ValueError(moving_update)
            mm = np.where(total > 0, mm * m + (1 - m) * mu, mm)
            mv = np.where(total > 0, mv * m + (1 - m) * var, mv)
        new_means.append(mm)
        new_variances.append(mv)
    return outputs, np.mean(new_means, axis=0), np.mean(new_variances, axis=0)
