"""Test and demo PKI for CORE over TLS: a CA, a server certificate and client certificates (PEM).

Generated with ``cryptography``; keys are EC P-256, written with mode 0600. The server certificate
names 127.0.0.1 and localhost. Nothing here is for production: real partners exchange certificates
out of band.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    """The files of one generated PKI: CA, server and one client certificate with their keys."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_ca(folder: Path, name: str = "x12gw sim CA") -> tuple[Path, Path]:
    """A self-signed CA: (certificate file, key file) in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    slug = name.replace(" ", "-").lower()
    cert_path, key_path = folder / f"{slug}.pem", folder / f"{slug}.key"
    _write_cert(cert_path, cert)
    _write_key(key_path, key)
    return cert_path, key_path


def issue(ca_cert: Path, ca_key: Path, folder: Path, common_name: str, *, server: bool) -> tuple[Path, Path]:
    """A certificate signed by the CA, for a server (127.0.0.1, localhost) or a client."""
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)  # noqa: S101 - we made it
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    slug = common_name.replace(" ", "-").lower()
    cert_path, key_path = folder / f"{slug}.pem", folder / f"{slug}.key"
    _write_cert(cert_path, cert)
    _write_key(key_path, key)
    return cert_path, key_path


def make_pki(folder: Path, *, ca_name: str = "x12gw sim CA", client: str = "x12gw client") -> Pki:
    """A CA with a server and a client certificate, all in ``folder`` (reused when already there)."""
    slug = ca_name.replace(" ", "-").lower()
    if (folder / f"{slug}.pem").exists() and (folder / "sim-server.pem").exists():
        ca_cert, ca_key = folder / f"{slug}.pem", folder / f"{slug}.key"
    else:
        ca_cert, ca_key = make_ca(folder, ca_name)
        issue(ca_cert, ca_key, folder, "sim server", server=True)
    client_slug = client.replace(" ", "-").lower()
    if not (folder / f"{client_slug}.pem").exists():
        issue(ca_cert, ca_key, folder, client, server=False)
    return Pki(
        ca_cert,
        ca_key,
        folder / "sim-server.pem",
        folder / "sim-server.key",
        folder / f"{client_slug}.pem",
        folder / f"{client_slug}.key",
    )
