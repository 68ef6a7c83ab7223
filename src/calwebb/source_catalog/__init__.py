"""source_catalog: the Stage 3 photometric and morphological source catalog."""
