"""The ramp_fit step: slopes from up-the-ramp samples."""
