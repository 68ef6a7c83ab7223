"""The superbias step."""
