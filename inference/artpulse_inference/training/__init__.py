"""Training pipeline: demo data, dataset loading, model training, MLflow logging, drift checks and retraining (used by the `artpulse` CLI)."""
