"""gankit: train, stabilize and evaluate Generative Adversarial Networks with PyTorch."""

__version__ = "0.1.0"
