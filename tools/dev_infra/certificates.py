"""Throwaway certificates for the local servers' TLS listeners (Kafka, PostgreSQL).

A private CA signs a server certificate valid for 127.0.0.1 (and ``localhost``) and, on request,
client certificates; everything is written as PEM, the format both Kafka (``ssl.keystore.type=PEM``)
and PostgreSQL (``ssl_cert_file``) read directly, so no keytool is needed. Keys are unencrypted
PKCS#8 with mode 0600: the files exist for tests and demos in a folder deleted afterwards.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Authority:
    """A CA that signs server and client certificates; ``cert`` is what clients trust."""

    cert: Path
    key: Path
    name: str

    def server(
        self, folder: Path, name: str = "server", *, owner_uid: int | None = None
    ) -> KeyPair:
        """A server certificate for 127.0.0.1 and localhost, signed by this CA.

        ``owner_uid``: the files' owner (PostgreSQL refuses a key another user owns)."""
        return self._issue(folder, name, server=True, owner_uid=owner_uid)

    def client(self, folder: Path, name: str, *, owner_uid: int | None = None) -> KeyPair:
        """A client certificate whose common name is ``name``, signed by this CA."""
        return self._issue(folder, name, server=False, owner_uid=owner_uid)

    def _issue(self, folder: Path, name: str, *, server: bool, owner_uid: int | None) -> KeyPair:
        ca_cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
        certificate = builder.sign(ca_key, hashes.SHA256())
        return _write(folder, name, certificate, key, owner_uid)


def authority(folder: Path, name: str = "autotask-sync test CA") -> Authority:
    """A new self-signed CA in ``folder`` (``<slug>-ca.pem``, ``<slug>-ca.key``).

    Two calls make two unrelated CAs: one can play the wrong CA a client is given by mistake.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    pair = _write(folder, f"{slug}-ca", certificate, key, None)
    return Authority(cert=pair.cert, key=pair.key, name=name)


def _write(
    folder: Path,
    name: str,
    certificate: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    owner_uid: int | None,
) -> KeyPair:
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    if owner_uid is not None:
        for path in (cert_path, key_path):
            os.chown(path, owner_uid, -1)
    return KeyPair(cert=cert_path, key=key_path)


__all__ = ["Authority", "KeyPair", "authority"]
