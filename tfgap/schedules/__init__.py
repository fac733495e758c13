"""Learning-rate and batch-size schedules for large-batch training."""
