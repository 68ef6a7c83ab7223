"""The lastframe step."""
