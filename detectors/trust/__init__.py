"""The C2PA trust lists fakestudio ships (package data; see README.md beside this file).

    from detectors.trust import c2pa_anchors_pem, LISTS
    c2pa_anchors_pem()      # the C2PA trust list + the C2PA TSA trust list, one PEM bundle

* ``C2PA-TRUST-LIST.pem``: the certificate authorities the C2PA conformance program
  recognises for claim signing (30 certificates, list issued 2026-08-05);
* ``C2PA-TSA-TRUST-LIST.pem``: the time-stamp authorities it recognises (22; 16 of them are
  also on the first list; the other 6 are time-stamping intermediates, extended key usage
  timeStamping only, whose roots are on the first list).

c2pa-rs checks a claim signer's chain and a time-stamp's chain against the same anchors
(``trust.trust_anchors``, its "system" anchors), so both lists go there together: that is how
the TSA list validates time-stamps. Adding the 6 TSA intermediates lets no new claim signer
in: a leaf under one chains to a root already on the C2PA list.

The user's own anchors (``--trust-anchors``, the local identity's CA) go to
``trust.user_anchors``; c2pa-rs names which set vouched ("found in [system_anchors] / [user_
anchors] trust anchors"), which is how ``detectors.c2pa`` tells the lists apart in one read.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

C2PA_LIST = "C2PA-TRUST-LIST.pem"
TSA_LIST = "C2PA-TSA-TRUST-LIST.pem"
#: where the lists come from (README.md has the commit and the licence)
SOURCE = "https://github.com/c2pa-org/conformance-public/tree/main/trust-list"
ISSUED = "2026-08-05"  # ListIssueDateTime of both lists in the snapshot shipped
LISTS = {
    "c2pa": "the C2PA trust list (C2PA conformance program)",
    "user": "a root certificate you gave with --trust-anchors",
    "local-identity": "this machine's own fakestudio signing identity (its local CA)",
}


@lru_cache(maxsize=4)
def read_list(name: str) -> str:
    """One shipped list, as PEM text (the certificates and their ``Subject`` lines)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def c2pa_anchors_pem() -> str:
    """The C2PA trust list and the C2PA TSA trust list together: c2pa-rs's system anchors."""
    return read_list(C2PA_LIST).rstrip("\n") + "\n" + read_list(TSA_LIST)
