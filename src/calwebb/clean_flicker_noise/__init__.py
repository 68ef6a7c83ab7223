"""The clean_flicker_noise step."""
