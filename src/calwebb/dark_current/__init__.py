"""The dark_current step."""
