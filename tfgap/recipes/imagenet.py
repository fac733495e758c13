"""`python -m tfgap.recipes.imagenet`: AlexNet-BN or ResNet-50 on ImageNet, the paper's regimes.

Defaults (Hoffer et al. 2017's reference code, "Base regimes";
`tfgap/recipes/defaults.py`, `RECIPES` and `NETWORK_DEFAULTS`):

| `--model` | batch | SGD (momentum 0.9) | weight decay | epochs |
|---|---|---|---|---|
| `alexnet_bn` (default) | 128 | lr 1e-2; 5e-3 @10; 1e-3 @15; 5e-4 @20; 1e-4 @25 | 5e-4 | 30 |
| `resnet50` | 256 | lr 0.1; 1e-2 @30; 1e-3 @60; 1e-4 @90 | 1e-4 | 100 |

`--model=resnet50` switches every setting you did not give yourself to the
ResNet-50 column. Every flag, grouped, with its default and allowed values:
`--help`; the paper's Table 2 rows:
`--flagfile=recipes/imagenet/<model>[_b<batch>]_<row>.flags`. ImageNet needs a
manual download: put `ILSVRC2012_img_train.tar` and `ILSVRC2012_img_val.tar`
in `<data_dir>/downloads/manual/` and pass `--data_dir=<data_dir> --download`
once (or run `tfds build imagenet2012`); without them the recipe exits with
status 1 and a one-line message naming both archives and that directory.

Example:

    python -m tfgap.recipes.imagenet --mock_data --mock_examples=8 --batch_size=4 \\
        --epochs=1 --noexport
"""

from tfgap.recipes import recipe_flags

if __name__ == "__main__":
    recipe_flags.run("imagenet", doc=__doc__)
