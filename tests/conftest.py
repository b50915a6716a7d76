"""Shared test helpers: where the reference material is, and how to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MISTGRID_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"
VECTORS = REFERENCE / "tahoe-lafs" / "vectors" / "test_vectors.yaml"


def require_reference(path: Path) -> Path:
    """Skip (with the reason) when the shared reference file is not beside the checkout."""
    if not path.exists():
        pytest.skip(f"reference material not found at {path} (set MISTGRID_SHARED)")
    return path


def run_cli(*args: str, input_bytes: bytes | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real `mistgrid` console script of this environment."""
    exe = Path(sys.executable).with_name("mistgrid")
    return subprocess.run([str(exe), *args], input=input_bytes, capture_output=True,
                          cwd=cwd, timeout=600, check=False)
