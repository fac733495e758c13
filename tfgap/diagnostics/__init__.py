"""Diagnostics of the generalization gap.

- `WeightDistance`: callback (and custom-loop helper) tracking `||w_t - w_0||`
  and its diffusion slope against `log t` (Hoffer et al. 2017).
- `sharpness`: Keskar et al.'s eps-sharpness, metric 2.1, full space or a
  random subspace.
- `hessian_top_eigenvalue`, `hessian_trace`: curvature by Hessian-vector
  products (power iteration, Hutchinson).
- `gradient_noise_scale`, `GradientNoiseScale`: McCandlish et al.'s
  `B_simple`, the critical batch size (function and callback).
- `interpolate`, `plot_interpolation`: Keskar's 1-D plot between a
  small-batch and a large-batch model.
"""

from tfgap.diagnostics.hessian import hessian_top_eigenvalue, hessian_trace
from tfgap.diagnostics.interpolation import (
    InterpolationResult,
    interpolate,
    plot_interpolation,
)
from tfgap.diagnostics.noise_scale import GradientNoiseScale, NoiseScale, gradient_noise_scale
from tfgap.diagnostics.sharpness import sharpness
from tfgap.diagnostics.weight_distance import WeightDistance

__all__ = [
    "GradientNoiseScale",
    "InterpolationResult",
    "NoiseScale",
    "WeightDistance",
    "gradient_noise_scale",
    "hessian_top_eigenvalue",
    "hessian_trace",
    "interpolate",
    "plot_interpolation",
    "sharpness",
]
