"""Satellite crop indices: scenes, zonal statistics and per-season field metrics."""
