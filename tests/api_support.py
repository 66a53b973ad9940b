"""Helpers for the HTTP API tests: a workspace with a running clearinghouse simulator, ``x12gw serve``'s
app on a loopback port through the same uvicorn configuration ``serve`` uses (TLS and client
certificates included), JSON calls, and a small certificate authority for mutual TLS."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.cli.serve_cmd import server_config
from gateway.runtime.config import GatewayConfig, load_config
from gateway.runtime.storeopen import open_store
from gateway.web.app import create_app
from tests.web_support import free_socket

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = ROOT / "sample_edi" / "requests"


def sample(name: str) -> dict[str, Any]:
    """A sample request (``270-subscriber``...) without its ``type`` (the endpoint says which)."""
    doc: dict[str, Any] = json.loads((REQUESTS / f"{name}.json").read_text())
    doc.pop("type", None)
    return doc


@dataclass(frozen=True)
class Api:
    host: str
    port: int
    tls: ssl.SSLContext | None = None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, http.client.HTTPMessage, Any]:
        """One call; the reply's status, headers and JSON (or text) body."""
        conn: http.client.HTTPConnection
        if self.tls is not None:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=60, context=self.tls)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        sent = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        if key:
            sent["Authorization"] = f"Bearer {key}"
        try:
            conn.request(method, f"/api/v1{path}", body=data, headers=sent)
            resp = conn.getresponse()
            text = resp.read().decode()
        finally:
            conn.close()
        try:
            return resp.status, resp.headers, json.loads(text)
        except json.JSONDecodeError:
            return resp.status, resp.headers, text


@contextmanager
def serving(
    config_path: Path | GatewayConfig,
    *,
    tls: tuple[Path, Path] | None = None,
    client_ca: Path | None = None,
) -> Iterator[int]:
    """The app over the configuration's store, served by uvicorn as ``x12gw serve`` configures it;
    yields the port."""
    config = config_path if isinstance(config_path, GatewayConfig) else load_config(config_path)
    store = open_store(config, role="serve")
    sock = free_socket()
    port = sock.getsockname()[1]
    settings = server_config(
        create_app(config, store),
        "127.0.0.1",
        port,
        tls_cert=str(tls[0]) if tls else None,
        tls_key=str(tls[1]) if tls else None,
        client_ca=str(client_ca) if client_ca else None,
    )
    settings.lifespan = "off"
    server = uvicorn.Server(settings)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        store.close()


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str = "x12gw tests") -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    )


def _write(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    """A test CA, a server certificate it signed, and client certificates (signed or self-signed)."""

    folder: Path
    ca_cert: Path
    server: tuple[Path, Path]
    ca_name: x509.Name
    ca_key: ec.EllipticCurvePrivateKey

    def client(self, stem: str, cn: str, *, signed: bool = True) -> tuple[Path, Path]:
        key = _key()
        subject = _name(cn)
        cert = _cert(subject, key, self.ca_name if signed else subject, self.ca_key if signed else key)
        return _write(self.folder, stem, cert, key)

    def context(self, client: tuple[Path, Path] | None) -> ssl.SSLContext:
        """A client context that trusts the test CA and presents ``client`` (if given)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        if client is not None:
            ctx.load_cert_chain(str(client[0]), str(client[1]))
        return ctx


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name = _key(), _name("x12gw test CA")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    ca_cert, _ = _write(folder, "ca", ca, ca_key)
    server_key = _key()
    server = _write(
        folder, "server", _cert(_name("127.0.0.1"), server_key, ca_name, ca_key, server=True), server_key
    )
    return Pki(folder, ca_cert, server, ca_name, ca_key)
