"""ArtPulse model side: features, quality gate, training, drift, the inference server and the CLI."""
