"""The gain_scale step."""
