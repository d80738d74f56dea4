"""Shared fixtures: the real data beside the project, skipped with a reason when absent."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

import pytest

from tests.tiny_models import make_tiny_depth_onnx

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_dir(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data folder ../shared/data/{name} is absent (a fresh clone does not have it)")
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny depth model of ``tiny_models`` (dynamic shape, edgedepth metadata), written once."""
    return make_tiny_depth_onnx(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="session")
def rgbd_dir() -> Path:
    return shared_dir("rgbd")


@pytest.fixture(scope="session")
def synthetic_rgbd_dir() -> Path:
    return shared_dir("rgbd_synthetic")


@pytest.fixture(scope="session")
def images_dir() -> Path:
    return shared_dir("images")


@pytest.fixture(scope="session")
def video_dir() -> Path:
    return shared_dir("video")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-long", action="store_true", help="the fuzz suite with ten times as many mutants")


@pytest.fixture(scope="session")
def fuzz_scale(request: pytest.FixtureRequest) -> int:
    return 10 if request.config.getoption("--fuzz-long") else 1


TRAIN_FOLDERS = ("train", "quantize", "benchmarks", "gpu")  # their tests need torch
HAS_TORCH = importlib.util.find_spec("torch") is not None
collect_ignore = [] if HAS_TORCH else list(TRAIN_FOLDERS)  # without torch only the runtime's tests can run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test is ``train`` (needs torch) or ``runtime``: ``pytest -m runtime`` runs in an install without
    torch (``pip install -e ".[test-runtime]"``). The folders of the training, quantization and benchmark
    trees are ``train``; elsewhere a test that needs torch says so with ``@pytest.mark.train``."""
    for item in items:
        parts = Path(str(item.path)).relative_to(REPO / "tests").parts
        if parts[0] in TRAIN_FOLDERS:
            item.add_marker(pytest.mark.train)
        elif item.get_closest_marker("train") is None:
            item.add_marker(pytest.mark.runtime)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzz suite's outcome table: tries, typed errors, accepted (finite, invariants kept), and what must
    stay 0: wrong silent results, untyped errors (or typed ones not naming the file), crashes, hangs, lost data.
    """
    if not HAS_TORCH:
        terminalreporter.write_line(
            f'not collected: tests/{{{",".join(TRAIN_FOLDERS)}}} (torch is not installed; pip install -e ".[test]")'
        )
    fuzz = next((m for name, m in list(sys.modules.items()) if name.endswith("fuzz.test_fuzz")), None)
    summary = getattr(fuzz, "SUMMARY", None)
    if not summary:
        return
    terminalreporter.write_line(
        "fuzz outcomes | family | tries | typed | accepted | wrong silent | untyped | crash | hang | data lost |"
    )
    for case, c in summary.items():
        known = ("typed", "finite", "wrong", "crash", "hang", "lost")
        untyped = sum(v for k, v in c.items() if k not in known)
        cells = [c["typed"], c["finite"], c["wrong"], untyped, c["crash"], c["hang"], c["lost"]]
        terminalreporter.write_line(f"| {case} | {sum(c.values())} | " + " | ".join(map(str, cells)) + " |")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail, naming them, when tests leave non-daemon threads running: the interpreter waits for those at
    exit, so the session would print its summary and then never end. Thread pools' workers are let go: the
    interpreter stops them itself before it waits."""
    from concurrent.futures import thread as pools

    stopped_at_exit = set(getattr(pools, "_threads_queues", {}))
    left = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t not in stopped_at_exit
    ]
    if left:
        sys.stderr.write(f"\nthreads left running by the tests (the session cannot exit): {left}\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
