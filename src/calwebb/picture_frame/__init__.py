"""The picture_frame step: NIRSpec thermal "picture frame" removal."""
