"""The saturation step."""
