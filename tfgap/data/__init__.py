"""Input pipelines: tensorflow-datasets and the embedded MNIST-1D."""
