"""The group_scale step."""
