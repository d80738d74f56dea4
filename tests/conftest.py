"""Shared fixtures: the real data beside the project, skipped with a reason when absent."""

from __future__ import annotations

import sys
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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzz suite's outcome table: case, tries, typed, finite, other (crash, hang, untyped)."""
    fuzz = next((m for name, m in list(sys.modules.items()) if name.endswith("fuzz.test_fuzz")), None)
    summary = getattr(fuzz, "SUMMARY", None)
    if not summary:
        return
    terminalreporter.write_line("fuzz outcomes | case | tries | typed | finite | other |")
    for case, c in summary.items():
        other = sum(v for k, v in c.items() if k not in ("typed", "finite"))
        terminalreporter.write_line(
            f"| {case} | {sum(c.values())} | {c['typed']} | {c['finite']} | {other} |"
        )
