"""Every C2PA / CAWG validation status code, sorted into what it means for a reader.

    from detectors.c2pa_codes import kind_of, explain
    kind_of("assertion.dataHash.mismatch")   # "integrity"
    kind_of("signingCredential.untrusted")   # "trust"

Three kinds, because trust is not integrity:

* ``integrity``: the file's bytes or the signed claim changed after signing, or the manifest
  is so malformed that its signature cannot be checked. Only these make a manifest
  "tampered" (an assertion no longer matches: ``assertion.*``, ``hashedURI.*``) or
  "invalid-signature" (the claim signature, the claim or the manifest store is broken).
* ``trust``: who vouches for the signer (or for a time-stamp, or for a CAWG identity): not on
  a trust list, revoked, expired, a certificate that breaks the profile, an OCSP answer
  missing. The bytes are as signed: a valid file stays valid, only not vouched for.
  CAWG identity-assertion codes (``cawg.*``) are all scoped to that identity: they say who
  the named person or organisation is proven to be, never that the picture changed (c2pa-rs
  itself keeps such a manifest "Valid").
* ``information``: successes and notes (a check skipped offline, an ingredient without
  credentials, a remote part not fetched).

Sources: c2pa-rs ``validation_results::validation_codes`` and the identity crate's status
codes (c2pa-rs 0.91), and the "Existing manifests" table of the C2PA specification 2.2,
with the legacy spellings older readers write (``signingCredential.revoked``).

Unknown codes: a failure code this table does not know is treated as ``integrity`` ("the
manifest cannot be relied on": invalid-signature), except under the ``cawg.`` prefix, which
is identity-scoped by construction and treated as ``trust``. A new code thus never turns an
invalid file valid; it can at worst call a valid file invalid, and says which code did.
"""

from __future__ import annotations

INTEGRITY, TRUST, INFORMATION = "integrity", "trust", "information"
KINDS = (INTEGRITY, TRUST, INFORMATION)

_I, _T, _N = INTEGRITY, TRUST, INFORMATION

#: code -> (kind, what it means in plain English)
CODES: dict[str, tuple[str, str]] = {
    # --- the claim signature ------------------------------------------------------------
    "claimSignature.validated": (_N, "the claim signature verifies"),
    "claimSignature.insideValidity": (
        _N,
        "the signing certificate was valid when the claim was signed",
    ),
    "claimSignature.trusted": (_N, "the claim signature comes from a trusted signer"),
    "claimSignature.mismatch": (
        _I,
        "the claim signature does not verify: the signed claim or its signature was changed",
    ),
    "claimSignature.missing": (_I, "the claim signature is missing from the manifest"),
    "claimSignature.outsideValidity": (
        _T,
        "the claim was signed outside the signing certificate's validity period",
    ),
    "algorithm.unsupported": (
        _I,
        "the signature or hash algorithm is unknown or not allowed, so it cannot be checked",
    ),
    "algorithm.deprecated": (_T, "the signature uses a deprecated algorithm"),
    "timeOfSigning.insideValidity": (
        _N,
        "the claimed time of signing is within the certificate chain's validity",
    ),
    # --- the signing credential (who signed) --------------------------------------------
    "signingCredential.trusted": (_N, "the signer's certificate is on a trust list in use"),
    "signingCredential.untrusted": (
        _T,
        "the signer's certificate is on no trust list in use: nobody you trust vouches for it",
    ),
    "signingCredential.invalid": (
        _T,
        "the signer's certificate does not meet the C2PA certificate profile (usage, "
        "algorithm or form)",
    ),
    "signingCredential.expired": (_T, "the signer's certificate has expired"),
    "signingCredential.revoked": (_T, "the signer's certificate has been revoked by its issuer"),
    "signingCredential.ocsp.revoked": (
        _T,
        "the signer's certificate has been revoked by its issuer (OCSP)",
    ),
    "signingCredential.ocsp.notRevoked": (_N, "the signer's certificate is not revoked (OCSP)"),
    "signingCredential.ocsp.unknown": (
        _T,
        "the certificate's revocation status is unknown to its OCSP responder",
    ),
    "signingCredential.ocsp.skipped": (
        _N,
        "revocation was not checked online (offline by default; --online fetches OCSP)",
    ),
    "signingCredential.ocsp.inaccessible": (
        _T,
        "the OCSP responder could not be reached, so revocation is unknown",
    ),
    # --- the time-stamp --------------------------------------------------------------------
    "timeStamp.validated": (_N, "the RFC 3161 time-stamp matches the signature"),
    "timeStamp.trusted": (_N, "the time-stamp authority is on a trust list in use"),
    "timeStamp.untrusted": (
        _T,
        "the time-stamp authority is on no trust list in use: the signing time is not vouched for",
    ),
    "timeStamp.mismatch": (
        _T,
        "the time-stamp was not made for this signature: the signing time is not proven",
    ),
    "timeStamp.malformed": (_T, "the time-stamp cannot be parsed: the signing time is not proven"),
    "timeStamp.outsideValidity": (
        _T,
        "the time-stamp falls outside the signer's or the authority's certificate validity",
    ),
    # --- the claim and the manifest store --------------------------------------------------
    "claim.malformed": (_I, "the claim is malformed"),
    "claim.missing": (_I, "the claim is missing"),
    "claim.multiple": (_I, "the manifest holds more than one claim"),
    "claim.hardBindings.missing": (
        _I,
        "the claim binds to no content (no hard binding): it could belong to any file",
    ),
    "claim.required.missing": (_I, "a field the claim requires is missing"),
    "claim.cbor.invalid": (_I, "the claim's CBOR is invalid"),
    "manifest.inaccessible": (
        _N,
        "the manifest is stored remotely and was not fetched (offline; --online fetches it)",
    ),
    "manifest.multipleParents": (_I, "the manifest has more than one parentOf ingredient"),
    "manifest.update.invalid": (
        _I,
        "an update manifest carries actions or a hard binding it may not carry",
    ),
    "manifest.update.wrongParents": (_I, "an update manifest has not exactly one parent"),
    "manifest.unknownProvenance": (_N, "a manifest in the store is of unknown provenance"),
    "manifest.unreferenced": (_N, "a manifest in the store is not referenced by any ingredient"),
    "manifest.compressed.invalid": (_I, "a compressed manifest cannot be decompressed"),
    "manifest.timestamp.invalid": (_I, "a time-stamp manifest is invalid"),
    "manifest.timestamp.wrongParents": (_I, "a time-stamp manifest has not exactly one parent"),
    "general.error": (_I, "validation failed with an error the reader could not classify"),
    # --- assertions: does the file still match what was signed -------------------------------
    "assertion.dataHash.match": (_N, "the file's bytes match the signed hash"),
    "assertion.bmffHash.match": (_N, "the file's boxes match the signed hash"),
    "assertion.boxesHash.match": (_N, "the file's boxes match the signed hash"),
    "assertion.collectionHash.match": (_N, "the collection's files match the signed hashes"),
    "assertion.hashedURI.match": (_N, "an assertion matches the hash the claim recorded"),
    "assertion.accessible": (_N, "a remote assertion was fetched"),
    "assertion.dataHash.additionalExclusionsPresent": (
        _N,
        "the signed hash leaves out more of the file than usual",
    ),
    "assertion.dataHash.mismatch": (
        _I,
        "the file's bytes no longer match the signed hash: it changed after signing",
    ),
    "assertion.bmffHash.mismatch": (
        _I,
        "the file's boxes no longer match the signed hash: it changed after signing",
    ),
    "assertion.boxesHash.mismatch": (
        _I,
        "the file's boxes no longer match the signed hash: it changed after signing",
    ),
    "assertion.boxesHash.unknownBox": (
        _I,
        "the file holds a box the signed hash does not list: it changed after signing",
    ),
    "assertion.collectionHash.mismatch": (
        _I,
        "a file of the collection no longer matches its signed hash",
    ),
    "assertion.collectionHash.incorrectFileCount": (
        _I,
        "the collection does not hold the files that were signed",
    ),
    "assertion.collectionHash.invalidURI": (_I, "the collection hash names an invalid file"),
    "assertion.hashedURI.mismatch": (
        _I,
        "an assertion was edited after signing (its hash no longer matches the claim)",
    ),
    "assertion.missing": (_I, "an assertion the claim lists is missing"),
    "assertion.undeclared": (_I, "the manifest holds an assertion the claim does not list"),
    "assertion.inaccessible": (
        _N,
        "a remote assertion was not fetched (offline; --online fetches it)",
    ),
    "assertion.notRedacted": (_I, "an assertion declared redacted is still present"),
    "assertion.selfRedacted": (_I, "a claim redacts one of its own assertions"),
    "assertion.required.missing": (_I, "a field an assertion requires is missing"),
    "assertion.json.invalid": (_I, "an assertion's JSON is invalid"),
    "assertion.cbor.invalid": (_I, "an assertion's CBOR is invalid"),
    "assertion.action.ingredientMismatch": (
        _I,
        "an action names an ingredient that is not there",
    ),
    "assertion.action.malformed": (_I, "an actions assertion is malformed"),
    "assertion.action.redacted": (_I, "an actions assertion was redacted (not allowed)"),
    "assertion.action.redactionMismatch": (_I, "a redaction action does not match the redaction"),
    "assertion.dataHash.malformed": (_I, "the data hash assertion is malformed"),
    "assertion.dataHash.redacted": (_I, "the data hash assertion was redacted (not allowed)"),
    "assertion.bmffHash.malformed": (_I, "the BMFF hash assertion is malformed"),
    "assertion.boxesHash.malformed": (_I, "the boxes hash assertion is malformed"),
    "assertion.collectionHash.malformed": (_I, "the collection hash assertion is malformed"),
    "assertion.multipleHardBindings": (_I, "the claim has more than one hard binding"),
    "assertion.cloud-data.hardBinding": (_I, "a hard binding is stored as cloud data"),
    "assertion.cloud-data.actions": (_I, "an update manifest's cloud data references actions"),
    "assertion.cloud-data.malformed": (_I, "a cloud data assertion is malformed"),
    "assertion.ingredient.malformed": (_I, "an ingredient assertion is malformed"),
    "assertion.metadata.disallowed": (_I, "a metadata assertion holds fields it may not hold"),
    "assertion.outsideManifest": (_I, "an assertion points outside its manifest"),
    "assertion.timestamp.malformed": (_I, "a time-stamp assertion is malformed"),
    "hashedURI.mismatch": (_I, "a hashed reference no longer matches what it points at"),
    "hashedURI.missing": (_I, "a hashed reference points at nothing"),
    # --- ingredients (files this one was made from) -----------------------------------------
    "ingredient.manifest.validated": (_N, "an ingredient's own credentials validate"),
    "ingredient.claimSignature.validated": (_N, "an ingredient's claim signature verifies"),
    "ingredient.unknownProvenance": (_N, "an ingredient has no credentials of its own"),
    "ingredient.modified": (_N, "an ingredient was modified since it was recorded"),
    "ingredient.possiblyModified": (_N, "an ingredient may have been modified"),
    "ingredient.hashedURI.mismatch": (
        _I,
        "an ingredient's recorded manifest no longer matches: it was changed",
    ),
    "ingredient.manifest.mismatch": (_I, "an ingredient's manifest does not match its record"),
    "ingredient.manifest.missing": (_I, "an ingredient's manifest is missing"),
    "ingredient.claimSignature.mismatch": (
        _I,
        "an ingredient's claim signature does not verify",
    ),
    "ingredient.claimSignature.missing": (_I, "an ingredient's claim signature is missing"),
    # --- CAWG identity assertions (who the named person or organisation is) ------------------
    "cawg.identity.well-formed": (
        _N,
        "an identity assertion is well formed and its signature verifies",
    ),
    "cawg.identity.trusted": (_N, "an identity assertion's credential is trusted"),
    "cawg.identity.cbor.invalid": (
        _T,
        "an identity assertion cannot be parsed: the identity is not proven",
    ),
    "cawg.identity.assertion.mismatch": (
        _T,
        "an identity assertion's signed list of assertions does not match the manifest: the "
        "identity is not proven for this content",
    ),
    "cawg.identity.assertion.duplicate": (
        _T,
        "an identity assertion references one assertion twice: the identity is not proven",
    ),
    "cawg.identity.hard_binding_missing": (
        _T,
        "an identity assertion does not cover the content's hash: it is not bound to this file",
    ),
    "cawg.identity.pad.invalid": (_T, "an identity assertion's padding is invalid"),
    "cawg.identity.sig_type.unknown": (
        _T,
        "an identity assertion uses a credential type this reader does not know",
    ),
    "cawg.x509.signature.validated": (_N, "an identity's X.509 signature verifies"),
    "cawg.x509.credential.trusted": (
        _N,
        "an identity's X.509 certificate chains to a trusted root",
    ),
    "cawg.x509.credential.untrusted": (
        _T,
        "an identity's X.509 certificate is on no trust list in use: the named identity is not "
        "vouched for",
    ),
    "cawg.x509.credential.invalid": (
        _T,
        "an identity's X.509 certificate does not meet the certificate profile",
    ),
    "cawg.x509.signature.mismatch": (
        _T,
        "an identity's X.509 signature does not verify: the named identity is not proven",
    ),
    "cawg.x509.algorithm.unsupported": (
        _T,
        "an identity's X.509 signature uses an algorithm that is not allowed",
    ),
    "cawg.x509.signature.outside_validity": (
        _T,
        "an identity was signed outside its certificate's validity period",
    ),
    "cawg.ica.credential_valid": (_N, "an identity claims aggregation credential is valid"),
    "cawg.ica.time_stamp.validated": (_N, "an identity credential's time-stamp verifies"),
    "cawg.ica.untrusted_issuer": (
        _T,
        "the issuer of an identity claims aggregation credential is not one you trust",
    ),
    "cawg.ica.did_unavailable": (
        _T,
        "the identity credential's issuer (a DID) could not be resolved (offline by default)",
    ),
    "cawg.ica.invalid_did_document": (
        _T,
        "the identity credential issuer's DID document is invalid",
    ),
    "cawg.ica.invalid_issuer": (_T, "the identity credential names an invalid issuer"),
    "cawg.ica.invalid_alg": (_T, "the identity credential uses an algorithm that is not allowed"),
    "cawg.ica.invalid_content_type": (_T, "the identity credential has the wrong content type"),
    "cawg.ica.invalid_cose_sign1": (_T, "the identity credential's signature cannot be parsed"),
    "cawg.ica.invalid_verifiable_credential": (
        _T,
        "the identity credential is not a valid verifiable credential",
    ),
    "cawg.ica.signature_mismatch": (
        _T,
        "the identity credential's signature does not verify: the identity is not proven",
    ),
    "cawg.ica.signer_payload.mismatch": (
        _T,
        "the identity credential was signed over other content: not bound to this file",
    ),
    "cawg.ica.time_stamp.invalid": (_T, "the identity credential's time-stamp is invalid"),
    "cawg.ica.valid_from.invalid": (_T, "the identity credential is not valid yet"),
    "cawg.ica.valid_from.missing": (_T, "the identity credential has no start of validity"),
    "cawg.ica.valid_until.invalid": (_T, "the identity credential has expired"),
    # --- unofficial ------------------------------------------------------------------------
    "com.adobe.prerelease": (_T, "signed with a pre-release version of the C2PA library"),
}


def kind_of(code: str) -> str:
    """The code's kind; unknown ones conservatively (see the module docstring)."""
    known = CODES.get(code)
    if known is not None:
        return known[0]
    return TRUST if code.startswith("cawg.") else INTEGRITY


def explain(code: str) -> str:
    known = CODES.get(code)
    if known is not None:
        return known[1]
    if code.startswith("cawg."):
        return "an identity assertion failed a check this reader does not know"
    return "a validation failure this reader does not know: the manifest is not relied on"


def tampering(code: str) -> bool:
    """An integrity failure that says the content or an assertion changed after signing
    (state "tampered"), as opposed to a broken signature or structure ("invalid-signature")."""
    return kind_of(code) == INTEGRITY and code.startswith(("assertion.", "hashedURI."))
