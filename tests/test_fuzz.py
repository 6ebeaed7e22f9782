"""Property-based fuzzing of the parsers that read untrusted bytes (issue 10).

Each target (``tests/fuzz_targets.py``) gets a fixed, derandomised set of Hypothesis examples:
structurally mutated real files (PNG chunks, JPEG segments, RIFF chunks, length fields set to
2^31 ...), raw bytes, XMP/A1111/JSON text built from their own tokens. The contract: no
exception other than our own error, no catch-all fallback taken, and each input handled within
the deadline (generous: it catches a hang or a quadratic parser, not a slow machine).
``bench/fuzz.py --minutes N`` runs the same targets for longer and keeps any failing input in
``tests/fuzz-regressions/``, which the last test here replays.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz_targets import REGRESSIONS, TARGETS, decode_input

EXAMPLES = {  # a few hundred in all
    "container": 80,
    "image": 60,
    "verify": 30,
    "xmp": 60,
    "a1111": 60,
    "user-comment": 30,
    "comfy-json": 40,
    "safetensors": 30,
    "ledger": 20,
}
DEADLINE = timedelta(seconds=5)


def _fuzz(name: str):
    target = TARGETS[name]

    @settings(
        max_examples=EXAMPLES[name],
        deadline=DEADLINE,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(target.strategy)
    def run(value):
        target.check(value)

    return run


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_fuzz(name):
    assert set(EXAMPLES) == set(TARGETS)
    TARGETS[name].warm_up()  # imports and caches: not part of the time per input
    _fuzz(name)()


def test_regression_inputs_still_pass():
    """Inputs that once failed (kept by bench/fuzz.py as ``<target>-<sha>.bin``)."""
    files = sorted(REGRESSIONS.glob("*.bin")) if REGRESSIONS.is_dir() else []
    for path in files:
        name = path.name.rsplit("-", 1)[0]
        target = TARGETS[name]
        target.check(decode_input(target, path.read_bytes()))
