"""The persistence step: flag groups inside a persistence window after saturation."""
