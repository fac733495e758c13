"""`python -m tfgap.recipes.cifar100`: WRN-16-4 on CIFAR-100, the paper's small-batch regime.

Defaults (`tfgap/recipes/defaults.py`): batch 128, SGD momentum 0.9, weight decay 1e-4,
lr 0.1, 2e-2 at 60, 4e-3 at 120, 1e-4 at 140; 200 epochs. Every flag, grouped, with its
default and allowed values: `--help`; the paper's Table 1 rows:
`--flagfile=recipes/cifar100/<model>_<row>.flags`.

Example:

    python -m tfgap.recipes.cifar100 --mock_data --mock_examples=64 --batch_size=32 --epochs=1
"""

from tfgap.recipes import recipe_flags

if __name__ == "__main__":
    recipe_flags.run("cifar100", doc=__doc__)
