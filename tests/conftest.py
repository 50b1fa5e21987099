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


@pytest.fixture(scope="session", autouse=True)
def _no_user_data_cache(tmp_path_factory):
    """Tests never read or fill the user's data cache (~/.cache/gankit/data) or use a mirror:
    GANKIT_DATA is an empty folder (standard data sets are found in /usr/share/datasets)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_DATA", str(tmp_path_factory.mktemp("gankit-data")))
        mp.delenv("GANKIT_DATA_MIRROR", raising=False)
        yield
