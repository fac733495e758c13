"""The commands: `python -m tfgap.recipes.<name>`.

A recipe is such a command with its defaults (`tfgap/recipes/defaults.py`):
`mnist`, `mnist1d`, `cifar10`, `cifar100`, `imagenet`; `tune`, `advise` and
`study` are commands built on them. The top-level `recipes/` folder holds
flagfiles for them (`--flagfile=recipes/cifar10/resnet44_ra.flags`). The
command line layer (`cli`, `recipe_flags`) sits on top of `tfgap.training` and the
library; nothing below imports it. Needs the TensorFlow backend of Keras.
"""

from tfgap import backend

backend.require_tensorflow("tfgap.recipes")
