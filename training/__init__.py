"""Labelled datasets, LightGBM training, evaluation and MLflow tracking (imports features)."""
