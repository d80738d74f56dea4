"""Packaging: every sub-package on disk is installed, and CI runs the README's test command."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_setup_cfg() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    mapping = dict(
        line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines() if line.strip()
    )
    on_disk = set()
    for name, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            on_disk.add(".".join([name, *rel.parts]))
    assert on_disk == listed


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run extracts the fenced line after the marker; check it finds a pytest run."""
    script = (REPO / ".ci" / "run").read_text()
    extract = script.split("cmd=$(", 1)[1].split(")\n", 1)[0]
    out = subprocess.run(["bash", "-c", extract], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "pip install" in out and "pytest" in out and len(out.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "command"),
    [
        ("train", ["train", "--recipe", "smoke", "--out", "x"]),
        ("quantize", ["fp16", "m.onnx", "-o", "o.onnx"]),
    ],
)
def test_a_missing_extra_is_named_with_its_install_command(
    extra: str, command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain install answers the training and quantization commands with pip's command, not a traceback."""
    import edgedepth_quantize
    from edgedepth import extras
    from edgedepth_train.__main__ import main as train_main

    monkeypatch.setitem(extras.EXTRA_MODULES, extra, (*extras.EXTRA_MODULES[extra], "no_such_module_xyz"))
    main = train_main if extra == "train" else edgedepth_quantize.main
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"pip install edgedepth[{extra}]" in err and "no_such_module_xyz" in err
