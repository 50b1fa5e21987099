"""The generic training loop and what it needs: checkpoints, EMA, logging, RNG state."""
