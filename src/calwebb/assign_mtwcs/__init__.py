"""assign_mtwcs: moving-target WCS frames for Stage 3 (stage3.md §2.2)."""
