"""In CI (CI=true) missing shared fixtures fail the run loudly instead of skipping tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _collect(tmp_path, ci: str | None):
    env = {**os.environ, "FAKESTUDIO_FIXTURES": str(tmp_path / "no-fixtures")}
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    cmd = [sys.executable, "-m", "pytest", "-q", "--collect-only", "tests/test_schedulers.py"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_missing_fixtures_fail_in_ci(tmp_path):
    res = _collect(tmp_path, "true")
    assert res.returncode == 1
    assert "CI=true but shared fixtures are missing" in res.stdout + res.stderr
    assert "c2pa/C.jpg" in res.stdout + res.stderr


def test_missing_fixtures_only_skip_outside_ci(tmp_path):
    assert _collect(tmp_path, None).returncode == 0
