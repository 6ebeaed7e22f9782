#!/usr/bin/env bash
# Create .venv and install fakestudio with every extra and the test tools (`.[dev]`); re-runs
# only when pyproject changes. (`pip install fakestudio` alone is the torch-free core.)
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
  # a .venv set up before the core/extras split has the GUI OpenCV, whose cv2 folder is the
  # headless build's too: remove both, the install below puts the headless one back alone
  if .venv/bin/pip show opencv-python >/dev/null 2>&1; then
    .venv/bin/pip uninstall -q -y opencv-python opencv-python-headless
  fi
  .venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
  # the tests' reference encoder of the Stable Diffusion watermarks; --no-deps: it asks for the
  # GUI OpenCV (a second cv2 over the headless one), and the rest it needs is installed above
  .venv/bin/pip install -q --disable-pip-version-check --no-deps "invisible-watermark==0.2.0"
  echo "$want" > "$stamp"
fi
