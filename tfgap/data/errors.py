"""Errors raised by the input pipelines."""


class DatasetNotPreparedError(RuntimeError):
    """The dataset is not prepared on disk and downloading is off.

    Raised by `tfgap.data.build_dataset` within seconds (before any file is
    read), so that a recipe can exit with a one-line message instead of
    hanging on a download that cannot happen on a machine without network.

    Args:
        name: the tfgap dataset name, e.g. `"cifar10"`.
        data_dir: the tensorflow-datasets data directory that was searched.
        message: the full, human-readable message (what is missing and the
            command that prepares it).

    Example:

    >>> err = DatasetNotPreparedError("cifar10", "/data", "cifar10 missing")
    >>> isinstance(err, RuntimeError), err.name, err.data_dir
    (True, 'cifar10', '/data')
    """

    def __init__(self, name, data_dir, message):
        super().__init__(message)
        self.name = name
        self.data_dir = data_dir
