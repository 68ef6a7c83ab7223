"""The linearity step."""
