#!/usr/bin/env bash
# The README's main command: set up (if needed), then run the whole story on the embedded
# default model, offline: two datasets from samples/, two LoRAs, their labelled encounter,
# verify, a simulated upload, verify again, compare, and an HTML talk page.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fakestudio demo --out "${1:-demo-out}" "${@:2}"
