import pytest


@pytest.fixture
def fast_overrides():
    """Logging settings that keep test runs quiet and quick."""
    return {
        "logging.progress": False,
        "logging.tensorboard": False,
        "logging.every": 5,
        "logging.sample_every": 1000,
        "logging.checkpoint_every": 1000,
    }
