"""Metrics that tell whether a GAN (or a trick) helped, each with a pinned protocol."""
