"""Shared fixtures: the real data beside the project, skipped with a reason when absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import make_tiny_depth_onnx

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
