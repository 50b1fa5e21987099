"""gankit: train, stabilize and evaluate Generative Adversarial Networks with PyTorch.

import gankit
run = gankit.train("ring8", {"schedule.steps": 500}, out="runs/ring8")
points = run.sample(2500)
"""

from gankit.api import evaluate, open_run, prepare, presets, resume, train  # noqa: E402
from gankit.config import RunConfig, load_recipe  # noqa: E402
from gankit.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    GankitError,
    TrainingError,
)
from gankit.run import Run  # noqa: E402
from gankit.version import __version__  # noqa: E402,F401

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GankitError",
    "Run",
    "RunConfig",
    "TrainingError",
    "__version__",
    "evaluate",
    "load_recipe",
    "open_run",
    "prepare",
    "presets",
    "resume",
    "train",
]
