"""The local signing identity: a small CA and an end-entity certificate, made offline.

On first use `ensure_identity()` creates, in `config_dir()/keys/` (mode 0700):

- `ca.pem`      the local CA certificate (give it to readers as a trust anchor),
- `signer.pem`  the signing chain, end-entity certificate first, then the CA,
- `signer.key`  the end-entity private key (PKCS#8 PEM, mode 0600).

`install_identity()` puts a user's own chain in the same place instead. The local CA's
private key is used once, to issue the signer, and never written anywhere: nothing
on disk can mint further certificates. Certificates carry no user name, host name or path,
only "fakestudio local CA/signer" and a short random id.

What c2pa-python 0.38.1 (c2pa-rs 0.91.3) asks of a signing chain, measured: the end-entity
certificate must be X.509 v3, not a CA, with an Authority Key Identifier (without one:
"the certificate is invalid"), key usage digitalSignature without keyCertSign, and an EKU;
serverAuth, anyExtendedKeyUsage or no EKU are refused. With default settings c2pa-rs
accepts emailProtection only: documentSigning or the C2PA claim-signing OID alone read
"signingCredential.invalid: certificate missing required EKU" unless `trust.trust_config`
lists them (our signer and reader set it). So the local signer carries emailProtection plus
the C2PA OID, which any reader accepts. The CA carries a Subject Key Identifier for the
AKI to point at (0.91.3 did not insist on it). Users can bring their own chain.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from detectors.files import atomic_write
from detectors.paths import CA_FILE, KEYS_DIR, config_dir
from fakestudio.errors import UserError

C2PA_CLAIM_SIGNING_OID = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
DOCUMENT_SIGNING_OID = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
# EKUs the C2PA specification allows on a claim-signing certificate.
SIGNING_EKUS = (ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING_OID, C2PA_CLAIM_SIGNING_OID)

CHAIN_FILE = "signer.pem"
KEY_FILE = "signer.key"
VALIDITY_DAYS = 3650
ORGANIZATION = "fakestudio"


class IdentityError(UserError):
    """A signing identity that cannot be used; the message is one line and names the file."""


@dataclass(frozen=True)
class Identity:
    cert_chain_pem: bytes  # end-entity certificate first, then the CA (or intermediates)
    private_key_pem: bytes
    alg: str = "es256"
    cert_path: Path | None = None
    key_path: Path | None = None
    ca_path: Path | None = None  # the local CA certificate, when this is the local identity

    def __repr__(self) -> str:  # never print the key
        return (
            f"Identity(alg={self.alg!r}, cert_path={self.cert_path!r}, key_path={self.key_path!r})"
        )


def keys_dir(config: Path | None = None) -> Path:
    return Path(config if config is not None else config_dir()) / KEYS_DIR


def ensure_identity(config: Path | None = None) -> Identity:
    """The local identity in `config/keys/` (default: the user config directory); made on first use."""
    kdir = keys_dir(config)
    if (kdir / CHAIN_FILE).exists() and (kdir / KEY_FILE).exists():
        return _load_local(kdir)
    try:
        _create_local(kdir)
    except OSError as e:
        raise IdentityError(
            f"{kdir}: cannot create the signing identity ({e.strerror or e})"
        ) from e
    return _load_local(kdir)


def _create_local(kdir: Path) -> None:
    chain, key, ca = kdir / CHAIN_FILE, kdir / KEY_FILE, kdir / CA_FILE
    _make_private_dir(kdir)
    with _locked(kdir / ".lock"):
        if chain.exists() and key.exists():  # another process made it meanwhile
            return
        if chain.exists() or key.exists():
            present = chain if chain.exists() else key
            raise IdentityError(
                f"{present}: half a signing identity (no {key.name if present == chain else chain.name} "
                f"beside it); move {kdir} away to make a new one"
            )
        ca_bytes, chain_pem, key_pem = _new_chain()
        atomic_write(ca, ca_bytes, 0o644)
        atomic_write(key, key_pem, 0o600)
        atomic_write(chain, chain_pem, 0o644)  # last: its presence means "complete"


def install_identity(cert: Path, key: Path, config: Path | None = None) -> Identity:
    """Make a user's own chain the identity `ensure_identity()` returns from now on.

    The chain and key are checked first (`load_identity`), then copied into `config/keys/`
    (key mode 0600). An identity already there is moved to `keys/previous-<time>/`, not lost.
    """
    mine = load_identity(cert, key)
    kdir = keys_dir(config)
    try:
        _make_private_dir(kdir)
        with _locked(kdir / ".lock"):
            present = [kdir / n for n in (CHAIN_FILE, KEY_FILE, CA_FILE) if (kdir / n).exists()]
            if present:
                stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
                backup = kdir / f"previous-{stamp}-{secrets.token_hex(2)}"
                backup.mkdir(mode=0o700)
                for p in present:
                    os.replace(p, backup / p.name)
            atomic_write(kdir / CA_FILE, ca_pem(mine), 0o644)
            atomic_write(kdir / KEY_FILE, mine.private_key_pem, 0o600)
            atomic_write(kdir / CHAIN_FILE, mine.cert_chain_pem, 0o644)
    except OSError as e:
        raise IdentityError(
            f"{kdir}: cannot install the signing identity ({e.strerror or e})"
        ) from e
    return _load_local(kdir)


def load_identity(cert: Path, key: Path) -> Identity:
    """A user's own chain (PEM, end-entity first) and its unencrypted PEM private key."""
    cert, key = Path(cert), Path(key)
    certs = _read_certs(cert)
    private = _read_key(key)
    leaf = certs[0]
    if leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise IdentityError(
            f"{key}: this private key does not belong to the first certificate in {cert}"
        )
    alg = _alg_for(private, key)
    problem = signing_cert_problem(leaf)
    if problem:
        raise IdentityError(f"{cert}: {problem}")
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    key_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Identity(chain_pem, key_pem, alg, cert_path=cert, key_path=key)


def signing_cert_problem(cert: x509.Certificate) -> str | None:
    """Why c2pa would refuse `cert` as a claim-signing certificate, or None."""
    if cert.version != x509.Version.v3:
        return "the signing certificate must be X.509 v3"
    now = dt.datetime.now(dt.timezone.utc)
    if cert.not_valid_after_utc < now:
        return f"the signing certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    with contextlib.suppress(x509.ExtensionNotFound):
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return (
                "the signing certificate is a CA certificate; C2PA needs an end-entity certificate"
            )
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "the signing certificate has no key usage extension (needs digitalSignature)"
    if not ku.digital_signature or ku.key_cert_sign:
        return (
            "the signing certificate's key usage must include digitalSignature and not keyCertSign"
        )
    try:
        ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return "the signing certificate has no extended key usage (needs emailProtection)"
    if not ekus & set(SIGNING_EKUS):
        return "the signing certificate's extended key usage lacks emailProtection, documentSigning or 1.3.6.1.4.1.62558.2.1"
    try:
        cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return "the signing certificate has no Authority Key Identifier"
    return None


def identity_info(identity: Identity) -> dict:
    """What `fakestudio keys show` prints: no secret, paths shown relative to ~."""
    certs = x509.load_pem_x509_certificates(identity.cert_chain_pem)
    leaf = certs[0]
    info = {
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "fingerprint_sha256": leaf.fingerprint(hashes.SHA256()).hex(),
        "serial": format(leaf.serial_number, "x"),
        "not_before": leaf.not_valid_before_utc.isoformat(),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "alg": identity.alg,
        "chain_length": len(certs),
        "cert_path": display_path(identity.cert_path),
        "key_path": display_path(identity.key_path),
        "ca_path": display_path(identity.ca_path),
        "source": "local" if _is_local(leaf) else "own certificate",
    }
    if identity.key_path is not None:
        try:
            mode = identity.key_path.stat().st_mode & 0o777
            info["key_mode"] = f"{mode:04o}"
            info["key_private"] = mode & 0o077 == 0
        except OSError:
            pass
    return info


def ca_pem(identity: Identity) -> bytes:
    """The certificate readers should trust for this identity: the last one in the chain."""
    certs = x509.load_pem_x509_certificates(identity.cert_chain_pem)
    return certs[-1].public_bytes(serialization.Encoding.PEM)


def display_path(path: Path | None) -> str | None:
    if path is None:
        return None
    path = Path(path)
    try:
        return str(Path("~") / path.resolve().relative_to(Path.home().resolve()))
    except (ValueError, RuntimeError, OSError):
        return str(path)


# --- internals ------------------------------------------------------------------------------


def _is_local(leaf: x509.Certificate) -> bool:
    """Made by `ensure_identity` (rather than a chain the user brought)."""
    cns = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return bool(cns) and str(cns[0].value).startswith("fakestudio local CA ")


def _load_local(kdir: Path) -> Identity:
    ident = load_identity(kdir / CHAIN_FILE, kdir / KEY_FILE)
    ca = kdir / CA_FILE
    return Identity(
        ident.cert_chain_pem,
        ident.private_key_pem,
        ident.alg,
        cert_path=ident.cert_path,
        key_path=ident.key_path,
        ca_path=ca if ca.exists() else None,
    )


def _new_chain() -> tuple[bytes, bytes, bytes]:
    """(CA PEM, chain PEM, end-entity key PEM): ECDSA P-256, SHA-256, ~10 years."""
    short_id = secrets.token_hex(4)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=VALIDITY_DAYS)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"fakestudio local CA {short_id}")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ee_key = ec.generate_private_key(ec.SECP256R1())
    ee_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"fakestudio local signer {short_id}"))
        .issuer_name(ca_name)
        .public_key(ee_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING_OID]),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ee_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem_bytes = ca_cert.public_bytes(pem)
    chain = ee_cert.public_bytes(pem) + ca_pem_bytes
    key = ee_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca_pem_bytes, chain, key


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _read_certs(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IdentityError(f"{path}: cannot read certificate chain ({e.strerror or e})") from e
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise IdentityError(f"{path}: not a PEM certificate chain ({e})") from e
    if not certs:
        raise IdentityError(f"{path}: no certificate found")
    return certs


def _read_key(path: Path):
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IdentityError(f"{path}: cannot read private key ({e.strerror or e})") from e
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError as e:
        raise IdentityError(
            f"{path}: the private key is encrypted; give an unencrypted PEM key"
        ) from e
    except Exception as e:  # cryptography raises ValueError and others for junk input
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise IdentityError(f"{path}: not a PEM private key ({first})") from e


def _alg_for(private, path: Path) -> str:
    if isinstance(private, ec.EllipticCurvePrivateKey):
        alg = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}.get(
            private.curve.name
        )
        if alg:
            return alg
        raise IdentityError(f"{path}: unsupported elliptic curve {private.curve.name}")
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(private, rsa.RSAPrivateKey):
        return "ps256"
    raise IdentityError(f"{path}: unsupported key type {type(private).__name__}")


def _make_private_dir(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)


@contextlib.contextmanager
def _locked(lock_path: Path):
    """An exclusive advisory lock (POSIX); elsewhere a best effort without one."""
    try:
        import fcntl
    except ImportError:  # Windows: the rename order still keeps each file whole
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


__all__ = [
    "Identity",
    "IdentityError",
    "ca_pem",
    "display_path",
    "ensure_identity",
    "identity_info",
    "install_identity",
    "keys_dir",
    "load_identity",
    "signing_cert_problem",
]
