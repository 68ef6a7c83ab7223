"""The calibration pipelines: each lists its steps and the few lines of flow between them."""
