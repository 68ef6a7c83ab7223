"""The calibration pipelines: each lists its steps in order and the few lines of flow between them."""
