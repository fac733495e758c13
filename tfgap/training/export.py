"""Atomic SavedModel export with a raw-image `serving_default` signature.

The exported signature takes what a client has, raw examples as stored
(`uint8` images for MNIST, CIFAR and ImageNet) in a batch of any size, applies
exactly the evaluation preprocessing of training (`tfgap.data.preprocess_for_eval`)
and returns `logits` and `probabilities` (softmax). It uses the moving
statistics of the normalization layers: no ghost batches at inference.

The SavedModel holds only TensorFlow graphs, so it loads with
`tf.saved_model.load` where tfgap is not installed. The resolved training
config is written beside it as `<export_dir>/tfgap_config.json`. The export is
written to a temporary directory and renamed into place, so a reader never
sees half a model.
"""

import json
import os
import shutil
import uuid

import tensorflow as tf

from tfgap import data

CONFIG_FILENAME = "tfgap_config.json"


class _Serving(tf.Module):
    def __init__(self, model, dataset):
        super().__init__()
        self.model = model
        spec = data.get_spec(dataset)
        self._dataset = dataset
        raw_shape = list(spec.raw_shape)
        if dataset == "imagenet2012":  # any height and width: resized and centre-cropped
            raw_shape = [None, None, raw_shape[-1]]

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, *raw_shape], tf.as_dtype(spec.raw_dtype), name="images")
            ]
        )
        def serve(images):
            inputs = data.preprocess_for_eval(self._dataset, images)
            logits = tf.cast(self.model(inputs, training=False), tf.float32)
            return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

        self.serve = serve


def export_saved_model(model, export_dir, *, dataset, config=None):
    """Writes `model` as a SavedModel serving raw `dataset` examples.

    Args:
        model: a trained Keras model taking preprocessed inputs, returning logits.
        export_dir: the final directory (replaced if it exists).
        dataset: the `tfgap.data` dataset name (its raw shape, dtype and
            evaluation preprocessing).
        config: a JSON-ready dict written as `tfgap_config.json` beside the model.

    Returns:
        `export_dir`.

    Example:

    ```python
    export_saved_model(model, "savedmodels/mnist_f1", dataset="mnist")
    served = tf.saved_model.load("savedmodels/mnist_f1")
    out = served.signatures["serving_default"](images=tf.zeros([3, 28, 28, 1], tf.uint8))
    out["probabilities"].shape  # (3, 10)
    ```
    """
    export_dir = os.path.abspath(export_dir)
    parent = os.path.dirname(export_dir)
    tf.io.gfile.makedirs(parent)
    tag = uuid.uuid4().hex[:8]
    tmp_dir = os.path.join(parent, f".{os.path.basename(export_dir)}.tmp-{tag}")
    old_dir = os.path.join(parent, f".{os.path.basename(export_dir)}.old-{tag}")
    module = _Serving(model, dataset)
    try:
        tf.saved_model.save(module, tmp_dir, signatures={"serving_default": module.serve})
        if config is not None:
            with open(os.path.join(tmp_dir, CONFIG_FILENAME), "w") as f:
                json.dump(config, f, indent=2, sort_keys=True)
        if os.path.exists(export_dir):
            os.rename(export_dir, old_dir)
        os.rename(tmp_dir, export_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        shutil.rmtree(old_dir, ignore_errors=True)
    return export_dir
