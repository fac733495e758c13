"""Small Keras callbacks for code that calls `tfgap.training.train`.

- `KeepModel`: keeps the model the trainer trained, so that the caller can
  measure it (sharpness, Hessian) or copy its weights once `train` returns.
"""

import keras


class KeepModel(keras.callbacks.Callback):
    """Remembers the model it is given in `set_model` (the trainer's model).

    `tfgap.training.train` builds its model inside, and returns only the
    run's record; pass a `KeepModel` among its callbacks to hold on to the
    trained model afterwards. The model is the trainer's own object (not a
    copy): `keep.trained` is `keep.model`, or `None` before `set_model`.

    Example:

    >>> import keras
    >>> keep = KeepModel()
    >>> keep.trained is None
    True
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> keep.set_model(model)
    >>> keep.trained is model, keep.model is model
    (True, True)

    With the trainer:

    ```python
    keep = KeepModel()
    result = tfgap.training.train(config, callbacks=[keep])
    weights = keep.trained.get_weights()
    ```
    """

    def __init__(self):
        super().__init__()
        self.trained = None

    def set_model(self, model):
        super().set_model(model)
        self.trained = model
