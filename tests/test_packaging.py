"""Packaging: every sub-package on disk is installed, and CI runs the README's test command."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

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
