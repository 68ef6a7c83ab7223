"""The reset step."""
