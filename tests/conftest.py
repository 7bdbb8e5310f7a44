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


# MS_CLIP_TEST_CPU_REPORT=path: record each test's CPU seconds (this process + finished children, e.g. CLI
# subprocesses). CPU time does not depend on how loaded the machine is, so it budgets CI's 90 minutes on
# 2 cores even when measured on a busy host.
_CPU_REPORT = os.environ.get("MS_CLIP_TEST_CPU_REPORT")
if _CPU_REPORT:
    import json
    import resource

    def _cpu_seconds() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        start = _cpu_seconds()
        yield
        with open(_CPU_REPORT, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": item.nodeid, "cpu_s": round(_cpu_seconds() - start, 2)}) + "\n")
