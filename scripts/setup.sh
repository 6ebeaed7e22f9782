#!/usr/bin/env bash
# Create .venv and install fakestudio with its test tools; re-runs only when pyproject changes.
# torch is installed first, pinned, so pip never swaps in a multi-GB CUDA build on a CPU box
# (here `torch==2.13.0` comes from local disk); FAKESTUDIO_TORCH=... picks another build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.fakestudio-setup
want=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -c "import torch" 2>/dev/null || \
    .venv/bin/pip install -q --disable-pip-version-check "torch==${FAKESTUDIO_TORCH:-2.13.0}"
  .venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
  echo "$want" > "$stamp"
fi
