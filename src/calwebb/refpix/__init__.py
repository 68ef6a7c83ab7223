"""The refpix step."""
