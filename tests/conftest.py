import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The test command runs two pytest workers on two cores: one TensorFlow thread pool thread
# each (and in the processes they start), not two workers competing with two threads each
# (the tests' models are small; measured on four of the slowest files: 271 s against 307 s).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """One TFDS data dir for the whole session, so each small builder is prepared once."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the repository")
    return SHARED_DATA
