"""The firstframe step."""
