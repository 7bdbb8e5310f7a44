"""Shared test set-up. Test-specific fixtures live in each test module (or tests/_helpers_*.py)."""
import os

# MindSpore logs deprecation warnings at WARNING level on every context call; keep test output readable.
os.environ.setdefault("GLOG_v", "3")
# Never touch the user's real cache from tests.
os.environ.setdefault("MS_CLIP_HOME", os.path.join(os.path.dirname(__file__), ".cache_ms_clip_tests"))

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def default_graph_mode():
    """Every test starts in GRAPH_MODE on the CPU (the default path users run)."""
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")


@pytest.fixture(params=["graph", "pynative"])
def ms_mode(request):
    """Run a test in both MindSpore execution modes; restores GRAPH_MODE afterwards."""
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE if request.param == "graph" else ms.PYNATIVE_MODE, device_target="CPU")
    yield request.param
    ms.set_context(mode=ms.GRAPH_MODE)
