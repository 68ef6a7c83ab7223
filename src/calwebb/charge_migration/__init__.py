"""The charge_migration step."""
