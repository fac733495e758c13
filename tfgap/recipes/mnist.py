"""`python -m tfgap.recipes.mnist`: F1 (Keskar et al. 2017), 784-5x[512, BN, ReLU]-10, on MNIST.

Defaults, the paper's small-batch regime (`tfgap/recipes/defaults.py`): batch 128, SGD
momentum 0.9, weight decay 1e-4, lr 0.1, /10 at epochs 10, 20, 30; 40 epochs. Every flag,
grouped, with its default and allowed values: `--help`.

Example:

    python -m tfgap.recipes.mnist --mock_data --mock_examples=64 --batch_size=32 --epochs=1
"""

from tfgap.recipes import recipe_flags

if __name__ == "__main__":
    recipe_flags.run("mnist", doc=__doc__)
