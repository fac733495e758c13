"""`python -m tfgap.recipes.mnist1d`: a 3 x 128 BN MLP on MNIST-1D, the study's small-batch regime.

Defaults (`tfgap/recipes/defaults.py`): batch 50, SGD momentum 0.9, lr 0.04, /10 at epoch 7;
10 epochs; 800 of the 4000 training signals held out for validation. MNIST-1D (Greydanus
2020) is generated locally, no download: a run takes seconds on a CPU. The advisor's
flagfile (`python -m tfgap.recipes.advise`, `advice.flags`) runs with it. Every flag,
grouped, with its default and allowed values: `--help`.

Example:

    python -m tfgap.recipes.mnist1d --batch_size=800 --ghost_batch_size=50 \\
        --regime_adaptation=true
"""

from tfgap.recipes import recipe_flags

if __name__ == "__main__":
    recipe_flags.run("mnist1d", doc=__doc__)
