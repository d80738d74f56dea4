"""data for EfficientDepth training."""
