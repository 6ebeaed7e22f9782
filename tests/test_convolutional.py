"""The durable mark's format-2 code: a punctured convolutional code and its list decoder."""

import numpy as np

from detectors.watermarks import convolutional as cc

rng = np.random.default_rng(7)


def noisy(msg, amplitude):
    c = cc.encode(msg)
    soft = amplitude * (1.0 - 2.0 * c) + rng.standard_normal(c.size)
    soft[np.round(np.linspace(0, c.size - 1, 16)).astype(int)] = 0.0  # punctured, as used
    return soft


def test_clean_and_noisy_codewords_decode():
    assert cc.coded_length(72) == 720 and cc.encode(np.zeros(72)).sum() == 0
    for _ in range(5):
        msg = rng.integers(0, 2, 72).astype(np.uint8)
        assert np.array_equal(cc.list_viterbi(noisy(msg, 3.0), 72, 1)[0], msg)
    # at 0.45 of the noise per coded bit (what a halved, re-encoded copy leaves) the message
    # is among the list's 32 far more often than it is the single best path
    first = listed = 0
    for _ in range(40):
        msg = rng.integers(0, 2, 72).astype(np.uint8)
        out = cc.list_viterbi(noisy(msg, 0.45), 72, 32)
        assert len(out) == 32 and len({o.tobytes() for o in out}) == 32
        first += np.array_equal(out[0], msg)
        listed += any(np.array_equal(o, msg) for o in out)
    assert listed >= 32 and listed > first, (first, listed)


def test_the_decoder_commutes_with_adding_a_codeword():
    """The false-positive argument: flipping the received signs along any codeword moves
    every proposed message by that codeword's message, so on a picture without the mark
    the proposals are uniform over the code."""
    soft = rng.standard_normal(720)
    soft[::45] = 0.0
    shift = rng.integers(0, 2, 72).astype(np.uint8)
    flipped = soft * (1.0 - 2.0 * cc.encode(shift))
    a = cc.list_viterbi(soft, 72, 8)
    b = cc.list_viterbi(flipped, 72, 8)
    assert len(a) == len(b) == 8
    assert all(np.array_equal(x ^ shift, y) for x, y in zip(a, b, strict=True))
