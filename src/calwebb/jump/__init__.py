"""The jump step: cosmic-ray and other jump detection."""
