"""models for EfficientDepth training."""
