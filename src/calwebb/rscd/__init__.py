"""The rscd step."""
