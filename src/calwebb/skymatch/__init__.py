"""The skymatch step: measure, equalise and optionally subtract the sky of Stage-3 images."""
