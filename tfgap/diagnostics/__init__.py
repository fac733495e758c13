"""Diagnostics of the generalization gap.

- `WeightDistance`: callback (and custom-loop helper) tracking `||w_t - w_0||`
  and its diffusion slope against `log t` (Hoffer et al. 2017).
- `LogSpacedSteps`, `fit_diffusion_slope`: the log-spaced record steps and the
  `a * log t + b` fit, shared by the callback, the trainer and the study.
- `sharpness`: Keskar et al.'s eps-sharpness, metric 2.1, full space or a
  random subspace.
- `hessian_top_eigenvalue`, `hessian_trace`: curvature by Hessian-vector
  products (power iteration, Hutchinson).
- `gradient_noise_scale`, `GradientNoiseScale`: McCandlish et al.'s
  `B_simple`, the critical batch size (function and callback).
- `interpolate`, `plot_interpolation`: Keskar's 1-D plot between a
  small-batch and a large-batch model.

Every diagnostic runs on the TensorFlow, JAX and PyTorch backends of Keras;
gradients and Hessian-vector products come from `tfgap.backend`.
"""

from tfgap.diagnostics.diffusion import LogSpacedSteps, fit_diffusion_slope
from tfgap.diagnostics.hessian import hessian_top_eigenvalue, hessian_trace
from tfgap.diagnostics.interpolation import (
    InterpolationResult,
    interpolate,
    plot_interpolation,
)
from tfgap.diagnostics.noise_scale import GradientNoiseScale, NoiseScale, gradient_noise_scale
from tfgap.diagnostics.sharpness import sharpness
from tfgap.diagnostics.weight_distance import WeightDistance, squared_distances, weight_distance

__all__ = [
    "GradientNoiseScale",
    "InterpolationResult",
    "LogSpacedSteps",
    "NoiseScale",
    "WeightDistance",
    "fit_diffusion_slope",
    "gradient_noise_scale",
    "hessian_top_eigenvalue",
    "hessian_trace",
    "interpolate",
    "plot_interpolation",
    "sharpness",
    "squared_distances",
    "weight_distance",
]
