"""Pure model-side logic shared by training and serving: features, drift and the data-quality gate.

Nothing here knows about HTTP or MLflow (an import-linter contract checks it).
"""
