"""TLS identities of validators: key + self-signed certificate, and SPKI pinning.

Each validator owns a P-256 TLS key and a self-signed certificate. The genesis
pins the SHA-256 of the key's DER SubjectPublicKeyInfo (``tls_spki_sha256``).
Contexts are TLS 1.3 only with mutual authentication: every member's
certificate is loaded as a trust anchor (OpenSSL then accepts exactly those
self-signed certificates), and after the handshake :func:`peer_spki_sha256`
is compared to the validator set — so a certificate that is trusted but no
longer pinned (a removed validator) is refused too.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from node.constants import TLS_CERT_DAYS
from node.errors import ConfigError, PeerRefused


def generate_identity(name: str) -> tuple[bytes, bytes]:
    """A new P-256 key and a self-signed certificate for ``name``: (key PEM, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"imi-validator-{name}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=TLS_CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def spki_sha256_of_cert(cert_bytes: bytes) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo of a certificate (PEM or DER)."""
    try:
        if cert_bytes.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(cert_bytes)
        else:
            cert = x509.load_der_x509_certificate(cert_bytes)
    except ValueError as exc:
        raise ConfigError(f"not a certificate: {exc}", reason="bad-certificate") from exc
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def _context(purpose: ssl.Purpose, key_file: Path, cert_file: Path,
             trust_pems: Iterable[bytes]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH
                         else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # identities are pinned by key, not by name
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS key/cert {key_file}: {exc}", reason="bad-tls-key") from exc
    anchors = b"".join(trust_pems).decode("ascii")
    if not anchors:
        raise ConfigError("no peer certificates to trust", reason="no-peer-certificates")
    try:
        ctx.load_verify_locations(cadata=anchors)
    except ssl.SSLError as exc:
        raise ConfigError(f"bad peer certificate: {exc}", reason="bad-certificate") from exc
    return ctx


def server_context(key_file: Path, cert_file: Path, trust_pems: Iterable[bytes]) -> ssl.SSLContext:
    """Context for accepting validator connections (client certificate required)."""
    return _context(ssl.Purpose.CLIENT_AUTH, key_file, cert_file, list(trust_pems))


def client_context(key_file: Path, cert_file: Path, trust_pems: Iterable[bytes]) -> ssl.SSLContext:
    """Context for dialling validators (server certificate required)."""
    return _context(ssl.Purpose.SERVER_AUTH, key_file, cert_file, list(trust_pems))


def peer_spki_sha256(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> bytes:
    """SPKI digest of the peer's certificate on an established TLS connection."""
    if ssl_object is None:
        raise PeerRefused("connection is not TLS")
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise PeerRefused("peer presented no certificate")
    return spki_sha256_of_cert(der)


def load_trust_dir(directory: Path) -> list[bytes]:
    """Every ``*.pem`` certificate in ``directory`` (the consortium's validator certs)."""
    if not directory.is_dir():
        raise ConfigError(f"no certificate directory {directory}", reason="no-peer-certificates")
    return [p.read_bytes() for p in sorted(directory.glob("*.pem"))]


class TrustDirectory:
    """The certificates directory of a running validator, kept loaded into its TLS contexts.

    TLS is only the first gate (who may complete a handshake); membership is decided
    after it, by the peer's key digest against the current validator set. So a
    certificate put into the directory later (an agency being admitted) is loaded by
    :meth:`refresh` into the live server and client contexts, and new handshakes
    accept it: adding a validator needs no restart of the others. A certificate
    cannot be taken out of a live context; a removed validator is refused by the
    validator-set check instead.
    """

    def __init__(self, directory: Path, contexts: Iterable[ssl.SSLContext], loaded: Iterable[bytes]) -> None:
        """``loaded``: the certificates (file contents) the contexts were made with."""
        self.directory = directory
        self._contexts = list(contexts)
        # SHA-256 of every file content already loaded (or already reported as bad).
        self._seen: set[bytes] = {hashlib.sha256(pem).digest() for pem in loaded}

    def refresh(self) -> tuple[list[str], list[str]]:
        """Load certificate files that are new since the last call; ``(loaded, rejected)``
        file names. A file that is not a certificate is rejected once (until it changes)."""
        loaded: list[str] = []
        rejected: list[str] = []
        try:
            paths = sorted(self.directory.glob("*.pem"))
        except OSError:
            return loaded, rejected
        for path in paths:
            try:
                pem = path.read_bytes()
            except OSError:
                continue  # removed or unreadable meanwhile: try again next time
            digest = hashlib.sha256(pem).digest()
            if digest in self._seen:
                continue
            self._seen.add(digest)
            try:
                spki_sha256_of_cert(pem)
                text = pem.decode("ascii")
                for ctx in self._contexts:
                    ctx.load_verify_locations(cadata=text)
            except (ConfigError, UnicodeDecodeError, ssl.SSLError):
                rejected.append(path.name)
                continue
            loaded.append(path.name)
        return loaded, rejected


__all__ = [
    "TrustDirectory",
    "client_context",
    "generate_identity",
    "load_trust_dir",
    "peer_spki_sha256",
    "server_context",
    "spki_sha256_of_cert",
]
