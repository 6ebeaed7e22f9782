#!/usr/bin/env bash
# The README's main command: set up (if needed), then generate labelled images on the
# embedded default model, offline, and show what each carries.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-out/demo}
.venv/bin/fakestudio generate "a photo of ben0a at a conference" --out "$out" --seed 7 -n 4
.venv/bin/python - "$out" <<'PY'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from detectors.c2pa import read_c2pa
from detectors.watermarks import ours

print("\nEvery image carries its labels:")
for path in sorted(Path(sys.argv[1]).glob("*.png")):
    wm = ours.decode(np.asarray(Image.open(path).convert("RGB")))
    c = read_c2pa(path)
    print(f"  {path.name}: watermark {wm.payload} ({wm.confidence:.2f}), C2PA {c.state},"
          f" source {c.digital_source_type.rsplit('/', 1)[-1]}")
print("\nA missing label would prove nothing: do not trust your eyes.")
PY
