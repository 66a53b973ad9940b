"""Helpers for the ``x12gw serve`` tests: a demo workspace, the app served on a loopback port by a
real uvicorn server (in a thread), plain HTTP calls, and headless Chromium driven by Selenium.

The browser tests skip when Debian's ``chromium``/``chromium-driver`` are missing, unless
``X12GW_REQUIRE_BROWSER`` is set (CI installs both and sets it): then they fail. Selenium is pointed
at ``/usr/bin/chromedriver`` so it never downloads a driver or a browser.
"""

from __future__ import annotations

import http.client
import io
import os
import shutil
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gateway.runtime.config import GatewayConfig, load_config
from gateway.runtime.storeopen import open_store
from gateway.store import Store
from gateway.web.app import create_app
from payersim.demo import run_demo

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PASSWORD = "correct horse battery"  # noqa: S105 - the test users' password


def make_demo(base: Path) -> Path:
    """Run the demo into ``base`` (kept) and return its gateway.toml."""
    code = run_demo(keep=base, timeout=90.0, out=io.StringIO())
    assert code == 0, "the demo did not finish"
    return base / "gateway.toml"


@dataclass
class Server:
    """A running app: base URL, its config and store."""

    url: str
    config: GatewayConfig
    store: Store
    host: str = "127.0.0.1"
    port: int = 0
    tls: bool = False
    cookies: dict[str, str] = field(default_factory=dict)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve(
    config_path: Path, *, store: Store | None = None, tls: tuple[Path, Path] | None = None, **options: Any
) -> Iterator[Server]:
    """``create_app`` over the configuration's store (or ``store``), served by uvicorn on a loopback
    port; the store is closed afterwards."""
    config = load_config(config_path)
    store = store or open_store(config, role="serve")
    app = create_app(config, store, **options)
    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        scheme = "https" if tls else "http"
        yield Server(f"{scheme}://127.0.0.1:{port}", config, store, port=port, tls=tls is not None)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        store.close()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def cookies(self) -> list[str]:
        return self.headers.get_all("set-cookie") or []


def http_call(
    server: Server,
    path: str,
    *,
    method: str = "GET",
    form: dict[str, str] | None = None,
    cookies: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request without following redirects (so 303s and Set-Cookie can be inspected)."""
    conn: http.client.HTTPConnection
    if server.tls:  # the test's own self-signed certificate
        context = ssl._create_unverified_context()  # noqa: S323 - a throw-away test certificate
        conn = http.client.HTTPSConnection(server.host, server.port, timeout=30, context=context)
    else:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    sent = dict(headers or {})
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    if cookies:
        sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    try:
        conn.request(method, path, body=body, headers=sent)
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read().decode("utf-8", errors="replace"))
    finally:
        conn.close()


def browser_problem() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401, PLC0415 - optional dev dependency
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


def require_browser() -> None:
    problem = browser_problem()
    if problem is None:
        return
    if os.environ.get("X12GW_REQUIRE_BROWSER"):
        pytest.fail(f"X12GW_REQUIRE_BROWSER is set but {problem}")
    pytest.skip(f"{problem}; set X12GW_REQUIRE_BROWSER=1 to make this a failure")


@contextmanager
def chromium(profile: Path, width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """Headless Chromium under Selenium, with a fresh profile and no network of its own."""
    require_browser()
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


_DEMOS: dict[Path, Path] = {}


def demo_copy(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of one demo run (run once per test session): its gateway.toml."""
    base = tmp_path_factory.getbasetemp()
    if base not in _DEMOS:
        _DEMOS[base] = make_demo(tmp_path_factory.mktemp("web-demo") / "ws").parent
    target = tmp_path_factory.mktemp(name) / "ws"
    shutil.copytree(_DEMOS[base], target, ignore=shutil.ignore_patterns("*.sock"))
    return target / "gateway.toml"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throw-away certificate and key for 127.0.0.1 (PEM files in ``folder``)."""
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415
    from ipaddress import IPv4Address  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path
