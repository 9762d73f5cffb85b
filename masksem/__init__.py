"""The `masksem` command: one room above the training and serving wings."""
