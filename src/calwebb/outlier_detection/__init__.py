"""outlier_detection: flag cosmic rays and other transients against a median of all inputs
(stage3.md §2.5)."""

from calwebb.outlier_detection.step import OutlierDetectionStep

__all__ = ["OutlierDetectionStep"]
