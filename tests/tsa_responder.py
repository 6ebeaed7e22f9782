"""A small RFC 3161 time-stamp authority for tests, on 127.0.0.1.

    with TimeStampAuthority() as tsa:      # its own CA and a timeStamping certificate
        sign_bytes(..., tsa_url=tsa.url)
        tsa.requests                       # how many time-stamp requests it answered
        tsa.ca_pem                         # the CA to trust, to read the stamp as trusted

It answers a DER ``TimeStampReq`` (``application/timestamp-query``) with a granted
``TimeStampResp``: a CMS SignedData over a ``TSTInfo`` carrying the request's message imprint
and nonce, signed (ECDSA P-256, SHA-256) by a certificate with the critical extended key
usage id-kp-timeStamping, the ESS signing-certificate-v2 attribute, and the chain attached.
``mode`` makes it misbehave: "error" (HTTP 500), "junk" (200 with bytes that are not a
response), "rejection" (a well-formed response with status "rejection").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import itertools
import threading

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

POLICY = "1.3.6.1.4.1.99999.1.1"  # a private test policy OID


def make_tsa_chain(days: int = 365) -> tuple[bytes, bytes, ec.EllipticCurvePrivateKey]:
    """(CA certificate PEM, TSA certificate PEM, TSA private key)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fakestudio test TSA root")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fakestudio test TSA")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ca.public_bytes(pem), cert.public_bytes(pem), key


class TimeStampAuthority:
    def __init__(self, mode: str = "ok"):
        self.mode = mode
        self.ca_pem, self.cert_pem, self._key = make_tsa_chain()
        self._cert = asn1_x509.Certificate.load(_der(self.cert_pem))
        self._ca = asn1_x509.Certificate.load(_der(self.ca_pem))
        self._serials = itertools.count(1)
        self.requests = 0
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/tsa"

    def __enter__(self) -> TimeStampAuthority:
        tsa = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server spelling
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                tsa.requests += 1
                if tsa.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    return
                reply = b"not a time-stamp response" if tsa.mode == "junk" else tsa.respond(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def respond(self, request_der: bytes) -> bytes:
        """The DER TimeStampResp for one DER TimeStampReq."""
        req = tsp.TimeStampReq.load(request_der)
        if self.mode == "rejection":  # a status and no token (asn1crypto insists on a token)
            status = tsp.PKIStatusInfo({"status": "rejection"}).dump()
            return core.Sequence.load(b"\x30" + _der_length(len(status)) + status).dump()
        tst = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": POLICY,
                "message_imprint": req["message_imprint"],
                "serial_number": next(self._serials),
                "gen_time": dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
                "accuracy": {"seconds": 1},
                "nonce": req["nonce"].native if req["nonce"].native is not None else None,
            }
        )
        content = tst.dump()
        attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
                cms.CMSAttribute(
                    {"type": "message_digest", "values": [hashlib.sha256(content).digest()]}
                ),
                cms.CMSAttribute(
                    {
                        "type": "signing_certificate_v2",
                        "values": [
                            {
                                "certs": [
                                    {
                                        "hash_algorithm": {"algorithm": "sha256"},
                                        "cert_hash": hashlib.sha256(self._cert.dump()).digest(),
                                    }
                                ]
                            }
                        ],
                    }
                ),
            ]
        )
        signature = self._key.sign(attrs.dump(), ec.ECDSA(hashes.SHA256()))
        signer = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": self._cert.issuer,
                            "serial_number": self._cert.serial_number,
                        }
                    }
                ),
                "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "signed_attrs": attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
                "signature": signature,
            }
        )
        signed = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
                "encap_content_info": {
                    "content_type": "tst_info",
                    "content": core.ParsableOctetString(content),
                },
                "certificates": [self._cert, self._ca],
                "signer_infos": [signer],
            }
        )
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed})
        return tsp.TimeStampResp(
            {"status": {"status": "granted"}, "time_stamp_token": token}
        ).dump()


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
