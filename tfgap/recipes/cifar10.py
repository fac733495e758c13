"""`python -m tfgap.recipes.cifar10`: ResNet-44 on CIFAR-10, the paper's small-batch regime.

Defaults (`tfgap/recipes/defaults.py`): batch 128, SGD momentum 0.9, weight decay 1e-4,
lr 0.1, /10 at epochs 81, 122, 164; 200 epochs. Every flag, grouped, with its default and
allowed values: `--help`; the paper's Table 1 rows:
`--flagfile=recipes/cifar10/<model>_<row>.flags`.

Example:

    python -m tfgap.recipes.cifar10 --mock_data --mock_examples=64 --batch_size=32 --epochs=1
"""

from tfgap.recipes import recipe_flags

if __name__ == "__main__":
    recipe_flags.run("cifar10", doc=__doc__)
