"""The ``calwebb`` command."""
