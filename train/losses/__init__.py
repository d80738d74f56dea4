"""losses for EfficientDepth training."""
