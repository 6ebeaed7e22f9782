"""C2PA trust as users meet it: which list vouches for a signer, and trust is not integrity.

Real reads throughout: files signed here with the local identity (and, for CAWG, with a CAWG
X.509 identity assertion made by c2pa-python itself), and the c2pa-rs fixtures in
shared/fixtures/c2pa.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from detectors import c2pa as reader
from detectors import c2pa_codes, trust
from detectors.c2pa import read_c2pa
from detectors.verify import verify_image
from fakestudio.label.identity import ensure_identity
from fakestudio.label.manifest import build_manifest, sign_bytes, signing_settings
from tests.test_c2pa import FIXTURES, _image_bytes, _record, needs_fixtures

CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The local identity, a file it signed, and the same picture with a CAWG identity."""
    home = tmp_path_factory.mktemp("trust") / "fshome"
    mp = pytest.MonkeyPatch()
    mp.setenv("FAKESTUDIO_HOME", str(home))
    try:
        ident = ensure_identity()
        plain = sign_bytes(
            _image_bytes("jpeg"), "image/jpeg", build_manifest(_record(), None), ident
        )
        cawg = sign_with_cawg_identity(_image_bytes("jpeg"), ident)
    finally:
        mp.undo()
    return {"identity": ident, "ca": ident.ca_path.read_bytes(), "plain": plain, "cawg": cawg}


def sign_with_cawg_identity(data: bytes, ident) -> bytes:
    """A JPEG whose manifest carries a CAWG X.509 identity assertion (``cawg.identity``),
    signed by c2pa-python 0.38.1 (c2pa-rs 0.91.3), like c2pa-rs's C_with_CAWG_data.jpg:
    a camera capture, the claim and the identity both signed by a certificate no trust list
    vouches for.

    c2pa-python has no public way to this: an explicit ``Signer`` ignores the
    ``cawg_x509_signer`` setting, and a signer given in the settings is refused by
    ``Builder.sign`` before the native library is asked, because ``Context.has_signer`` is
    only set for an explicit one. So the builder's ``_has_context_signer`` flag is set by
    hand (c2pa-python is pinned to 0.38.x in pyproject; if the flag goes, this fails here)."""
    import c2pa

    local = {
        "alg": ident.alg,
        "sign_cert": ident.cert_chain_pem.decode(),
        "private_key": ident.private_key_pem.decode(),
        "tsa_url": None,
    }
    settings = dict(signing_settings(), signer={"local": local}, cawg_x509_signer={"local": local})
    definition = {
        "claim_generator_info": [{"name": "fakestudio-tests"}],
        "title": "capture.jpg",
        "format": "image/jpeg",
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": CAPTURE}]},
            }
        ],
    }
    context = c2pa.Context(settings=c2pa.Settings.from_dict(settings))
    out = io.BytesIO()
    with c2pa.Builder(definition, context=context) as builder:
        assert hasattr(builder, "_has_context_signer"), "c2pa-python changed: see docstring"
        builder._has_context_signer = True
        builder.sign("image/jpeg", io.BytesIO(data), out)
    return out.getvalue()


# --- the shipped lists -------------------------------------------------------------------------


def test_shipped_lists_load_and_are_attributed():
    claim = x509.load_pem_x509_certificates(trust.read_list(trust.C2PA_LIST).encode())
    tsa = x509.load_pem_x509_certificates(trust.read_list(trust.TSA_LIST).encode())
    assert (len(claim), len(tsa)) == (30, 22)
    both = trust.c2pa_anchors_pem()
    assert len(x509.load_pem_x509_certificates(both.encode())) == 52
    readme = (trust.resources.files(trust.__name__) / "README.md").read_text()
    assert "c2pa-org/conformance-public" in readme
    assert "7dbff513b66e36184619286fe734beea32f2e6db" in readme
    assert "Creative Commons Attribution 4.0" in readme and trust.ISSUED in readme


def test_tsa_only_entries_add_no_claim_signer():
    """Both lists are c2pa-rs's system anchors together; the TSA list's own entries are
    time-stamping intermediates whose issuers are already on the C2PA trust list."""
    claim = x509.load_pem_x509_certificates(trust.read_list(trust.C2PA_LIST).encode())
    tsa = x509.load_pem_x509_certificates(trust.read_list(trust.TSA_LIST).encode())
    subjects = {c.subject for c in claim}
    fingerprints = {c.fingerprint(c.signature_hash_algorithm) for c in claim}
    extra = [c for c in tsa if c.fingerprint(c.signature_hash_algorithm) not in fingerprints]
    assert extra
    for cert in extra:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.TIME_STAMPING], cert.subject
        assert cert.issuer in subjects, cert.subject


# --- which list vouches ------------------------------------------------------------------------


def test_nobody_vouches_without_anchors(made):
    r = read_c2pa(made["plain"])
    assert r.state == "valid-untrusted" and r.trust_list is None
    assert r.trust_note == (
        "not vouched for: the signer's certificate chains to none of the C2PA trust list"
    )
    assert r.codes[0] == {
        "code": "signingCredential.untrusted",
        "kind": "trust",
        "explanation": c2pa_codes.explain("signingCredential.untrusted"),
        "failure": True,
        "detail": "signing certificate untrusted",
        "scope": "manifest",
    }


def test_local_identity_and_user_anchors_are_told_apart(made):
    local = read_c2pa(made["plain"], local_anchor=made["ca"])
    assert (local.state, local.trust_list) == ("trusted", "local-identity")
    assert "this machine's own fakestudio signing identity" in local.trust_note
    user = read_c2pa(made["plain"], trust_anchors=[made["ca"]])
    assert (user.state, user.trust_list) == ("trusted", "user")
    # the local CA among the user's anchors (as verify passes them) still counts as local
    both = read_c2pa(made["plain"], trust_anchors=[made["ca"]], local_anchor=made["ca"])
    assert both.trust_list == "local-identity"


@needs_fixtures
def test_both_user_and_local_anchors_configured(made):
    """c2pa-rs says "user anchors" for both: a second read with the local CA alone decides."""
    root = (FIXTURES / "test_cert_root_bundle.pem").read_bytes()
    c = read_c2pa(FIXTURES / "C.jpg", trust_anchors=[root], local_anchor=made["ca"])
    assert (c.state, c.trust_list) == ("trusted", "user")
    mine = read_c2pa(made["plain"], trust_anchors=[root], local_anchor=made["ca"])
    assert (mine.state, mine.trust_list) == ("trusted", "local-identity")
    untrusted = read_c2pa(made["plain"], trust_anchors=[root])
    assert untrusted.trust_list is None
    assert untrusted.trust_note.endswith("the C2PA trust list, your --trust-anchors")


@needs_fixtures
def test_c2pa_list_is_reported_as_c2pa(monkeypatch):
    """No test can hold a key under the real C2PA trust list, so the shipped list is swapped
    for the c2pa-rs test root here (the same code path: c2pa-rs's system anchors)."""
    root = (FIXTURES / "test_cert_root_bundle.pem").read_text()
    monkeypatch.setattr(reader, "c2pa_anchors_pem", lambda: root)
    reader._context.cache_clear()
    try:
        r = read_c2pa(FIXTURES / "C.jpg")
        assert (r.state, r.trust_list) == ("trusted", "c2pa")
        assert r.trust_note == "vouched for by the C2PA trust list (C2PA conformance program)"
        assert read_c2pa(FIXTURES / "C.jpg", trust_lists=False).trust_list is None
    finally:
        reader._context.cache_clear()


@needs_fixtures
def test_the_real_list_does_not_vouch_for_test_certificates():
    for name in ("C.jpg", "CA.jpg"):
        r = read_c2pa(FIXTURES / name)
        assert (r.state, r.trust_list) == ("valid-untrusted", None)
        assert r.timestamp["time"].startswith("2024-")
        assert r.timestamp["authority"] == "DigiCert Timestamp 2023"


def test_verify_json_carries_the_trust_fields(made, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "elsewhere"))  # no local CA here
    path = tmp_path / "signed.jpg"
    path.write_bytes(made["plain"])
    c2pa = verify_image(path, use_ledger=False).to_dict()["c2pa"]
    assert (c2pa["trust_list"], c2pa["state"]) == (None, "valid-untrusted")
    assert c2pa["trust_note"].startswith("not vouched for")
    assert [c["code"] for c in c2pa["codes"]][:1] == ["signingCredential.untrusted"]
    anchored = verify_image(path, use_ledger=False, trust_anchors=[made["ca"]]).to_dict()
    assert anchored["c2pa"]["trust_list"] == "user"
    json.dumps(anchored, default=str)


# --- trust is not integrity: CAWG identities -----------------------------------------------------


def test_cawg_identity_file_reads_valid_not_tampered(made):
    r = read_c2pa(made["cawg"])
    assert r.validation_state == "Valid"
    assert r.status_codes == ["signingCredential.untrusted", "cawg.x509.credential.untrusted"]
    assert r.state == "valid-untrusted", r.message
    kinds = {c["code"]: (c["kind"], c["scope"]) for c in r.codes}
    assert kinds["cawg.x509.credential.untrusted"] == ("trust", "identity")
    assert kinds["signingCredential.untrusted"] == ("trust", "manifest")
    (who,) = r.identities
    assert who["credential"] == "X.509 certificate" and who["sig_type"] == "cawg.x509.cose"
    assert who["who"].startswith("fakestudio local signer ") and who["issuer"] == "fakestudio"
    assert who["signature_valid"] is True and who["trusted"] is False
    assert who["codes"] == ["cawg.x509.credential.untrusted"]


def test_cawg_identity_file_with_trusted_signer(made):
    """c2pa-rs says "Valid", not "Trusted", while the CAWG credential is untrusted; the claim
    signer is trusted all the same and reads so."""
    r = read_c2pa(made["cawg"], local_anchor=made["ca"])
    assert r.validation_state == "Valid"
    assert (r.state, r.trust_list) == ("trusted", "local-identity")
    assert r.identities[0]["trusted"] is False


def test_verify_does_not_call_a_cawg_file_tampered(made, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESTUDIO_HOME", str(tmp_path / "elsewhere"))
    path = tmp_path / "capture.jpg"
    path.write_bytes(made["cawg"])
    rep = verify_image(path, use_ledger=False).to_dict()
    assert rep["c2pa"]["state"] == "valid-untrusted"
    assert rep["verdict"]["outcome"] != "tampered" and rep["verdict"]["exit_code"] != 3
    assert rep["c2pa"]["identities"][0]["credential"] == "X.509 certificate"


# --- the code table ------------------------------------------------------------------------------

# Every code c2pa-rs 0.91 defines (validation_codes and the identity crate), and the legacy
# spellings older readers write.
C2PA_RS_CODES = """
claimSignature.validated claimSignature.insideValidity claimSignature.mismatch
claimSignature.missing claimSignature.outsideValidity signingCredential.trusted
signingCredential.untrusted signingCredential.invalid signingCredential.expired
signingCredential.revoked signingCredential.ocsp.revoked signingCredential.ocsp.notRevoked
signingCredential.ocsp.skipped signingCredential.ocsp.inaccessible signingCredential.ocsp.unknown
timeStamp.validated timeStamp.trusted timeStamp.untrusted timeStamp.mismatch timeStamp.malformed
timeStamp.outsideValidity timeOfSigning.insideValidity algorithm.unsupported algorithm.deprecated
assertion.hashedURI.match assertion.hashedURI.mismatch assertion.dataHash.match
assertion.dataHash.mismatch assertion.dataHash.additionalExclusionsPresent
assertion.bmffHash.match assertion.bmffHash.mismatch assertion.boxesHash.match
assertion.boxesHash.mismatch assertion.boxesHash.unknownBox assertion.collectionHash.match
assertion.accessible assertion.inaccessible assertion.missing assertion.undeclared
assertion.notRedacted assertion.selfRedacted assertion.required.missing assertion.json.invalid
assertion.cbor.invalid assertion.action.ingredientMismatch assertion.action.redacted
assertion.multipleHardBindings assertion.cloud-data.hardBinding assertion.cloud-data.actions
ingredient.manifest.validated ingredient.unknownProvenance ingredient.claimSignature.validated
ingredient.hashedURI.mismatch claim.malformed claim.missing claim.multiple
claim.hardBindings.missing claim.required.missing claim.cbor.invalid manifest.inaccessible
manifest.multipleParents manifest.update.invalid manifest.update.wrongParents
manifest.unknownProvenance manifest.unreferenced general.error
cawg.identity.well-formed cawg.identity.trusted cawg.identity.cbor.invalid
cawg.identity.assertion.mismatch cawg.identity.assertion.duplicate
cawg.identity.hard_binding_missing cawg.identity.pad.invalid cawg.identity.sig_type.unknown
cawg.x509.signature.validated cawg.x509.credential.trusted cawg.x509.credential.untrusted
cawg.x509.credential.invalid cawg.x509.signature.mismatch cawg.x509.algorithm.unsupported
cawg.x509.signature.outside_validity cawg.ica.credential_valid cawg.ica.untrusted_issuer
cawg.ica.did_unavailable cawg.ica.signature_mismatch cawg.ica.valid_until.invalid
""".split()


def test_every_code_has_a_kind_and_a_plain_explanation():
    missing = [c for c in C2PA_RS_CODES if c not in c2pa_codes.CODES]
    assert not missing, missing
    for code, (kind, text) in c2pa_codes.CODES.items():
        assert kind in c2pa_codes.KINDS, code
        assert text and text[0].islower() and not text.endswith("."), code
    # integrity is only ever about the bytes, the claim or the store; never about who signed
    for code in c2pa_codes.CODES:
        if code.startswith(("signingCredential.", "timeStamp.", "cawg.")):
            assert c2pa_codes.kind_of(code) != c2pa_codes.INTEGRITY, code


def _store(vstate, failures, successes=("claimSignature.validated",)):
    """A manifest store report as c2pa-python returns it (for the pure mapping only)."""
    label = "urn:c2pa:test"
    return {
        "active_manifest": label,
        "manifests": {label: {"title": "t", "assertions": []}},
        "validation_state": vstate,
        "validation_results": {
            "activeManifest": {
                "success": [{"code": c, "url": "", "explanation": ""} for c in successes],
                "informational": [],
                "failure": [{"code": c, "url": "", "explanation": ""} for c in failures],
            }
        },
    }


@pytest.mark.parametrize(
    "vstate, failures, state",
    [
        ("Valid", ["signingCredential.untrusted"], "valid-untrusted"),
        ("Invalid", ["signingCredential.expired"], "valid-untrusted"),
        ("Invalid", ["signingCredential.ocsp.revoked"], "valid-untrusted"),
        ("Invalid", ["claimSignature.outsideValidity"], "valid-untrusted"),
        ("Invalid", ["cawg.identity.assertion.mismatch"], "valid-untrusted"),
        ("Invalid", ["assertion.dataHash.mismatch", "signingCredential.untrusted"], "tampered"),
        ("Invalid", ["claimSignature.mismatch"], "invalid-signature"),
        ("Invalid", ["claim.malformed"], "invalid-signature"),
        ("Invalid", ["assertion.inaccessible"], "remote-not-fetched"),
        # unknown codes: conservative outside cawg., identity-scoped under it
        ("Valid", ["org.example.brandNewCheck"], "invalid-signature"),
        ("Valid", ["cawg.brand_new.check"], "valid-untrusted"),
    ],
)
def test_state_from_codes(vstate, failures, state):
    r = reader._summarise(_store(vstate, failures))
    assert r.state == state, r.message
    assert [c["code"] for c in r.codes] == failures


def test_trust_failures_without_a_verified_signature_are_not_valid():
    """signingCredential.invalid can end validation before the signature is checked (an ECDSA
    signature in the wrong encoding): no claimSignature.validated, no validity."""
    r = reader._summarise(_store("Invalid", ["signingCredential.invalid"], successes=()))
    assert r.state == "invalid-signature"


def test_codes_in_messages_are_the_codes():
    r = reader._summarise(_store("Invalid", ["signingCredential.expired"]))
    assert re.search(r"signer not vouched for: signingCredential\.expired$", r.message)
    assert r.trust_note == "not vouched for: the signer's certificate has expired"


def test_anchor_set_words_and_the_second_read_order():
    both = reader._Anchors("USER", "LOCAL", True)
    said = "signing certificate trusted, found in [{}] trust anchors"
    assert reader._anchor_set(said.format("system_anchors"), both) == "c2pa"
    assert reader._anchor_set(said.format("user_anchors"), both) == "?user"
    assert reader._anchor_set(said.format("user_anchors"), reader._Anchors("U", None, True)) == (
        "user"
    )
    assert reader._anchor_set("trusted", reader._Anchors(None, "L", True)) == "?"
    assert reader._anchor_set("trusted", reader._Anchors(None, "L", False)) == "local-identity"
    assert reader._anchor_set("legacy timestamp cert trusted: X", both, guess=False) is None
    asked = []

    def vouches(only):
        asked.append(only)
        return only.local is not None

    assert reader._which_list(both, vouches, "?") == "local-identity"
    assert [(a.user, a.local, a.lists) for a in asked] == [
        (None, None, True),
        (None, "LOCAL", False),
    ]
    asked.clear()
    assert reader._which_list(both, vouches, "?user") == "local-identity" and len(asked) == 1
