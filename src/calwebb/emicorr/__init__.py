"""The emicorr step: MIRI electromagnetic-interference removal."""
