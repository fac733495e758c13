"""Ghost Batch Normalization and model surgery."""

from tfgap.layers.ghost_batch_normalization import GhostBatchNormalization
from tfgap.layers.ghostify import ghostify

__all__ = ["GhostBatchNormalization", "ghostify"]
