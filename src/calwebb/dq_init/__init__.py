"""The dq_init step."""
