"""ArtPulse operator: reconciles ArtPulseModel resources into workloads, traffic and rollouts."""
