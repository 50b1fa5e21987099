"""Weights of the classifiers gankit ships (see gankit.metrics.classifier)."""
