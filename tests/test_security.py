"""Security: unknown and changed host keys are refused with an alert and nothing is sent; remote file
names that are paths or carry NUL/control characters are refused; everything the gateway writes is
owner-only; a private key others can read is refused; mapping XML cannot reach files or the network;
secrets from the environment never show up in logs, ``--json`` output or error messages."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import paramiko
import pytest

from gateway.cli import make_parser
from gateway.errors import TransferError
from gateway.lifecycle import FileState
from gateway.runtime.config import parse_config
from gateway.runtime.context import Context
from gateway.runtime.runner import Gateway, load_mapping_rules, open_context
from gateway.stages import batching, inbound, intake
from gateway.stages.outbox import write_results
from gateway.transport.keys import ensure_key, public_line
from gateway.transport.sftp import check_remote_name, remote_name_problem
from mappings.mapper import default_rules, with_overrides
from payersim.sftp_server import FaultContext, RootedSftpInterface, SftpFaults, SftpServer
from payersim.simulator import ClearinghouseSimulator
from tests.e2e_harness import config_text, scenario
from tests.exactly_once import csv_batch, eligibility
from transactions.errors import X12GatewayError

ROOT = Path(__file__).resolve().parent.parent
X12GW = Path(sys.executable).with_name("x12gw")


class EventLog(logging.Handler):
    """The gateway's log events (redacted event dicts) with their level."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            self.events.append({**record.msg, "_level": record.levelname})


@pytest.fixture
def events() -> Iterator[EventLog]:
    log = logging.getLogger("x12gw")
    handler, level = EventLog(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


def _ctx(base: Path, text: str) -> Context:
    return open_context(parse_config(tomllib.loads(text), base / "gw"))


# --------------------------------------------------------------------------------------------- host keys


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ClearinghouseSimulator]:
    keys = tmp_path / "keys"
    ensure_key(keys / "client")
    for sub in ("inbound", "outbound"):
        (tmp_path / "clearinghouse" / sub).mkdir(parents=True)
    with ClearinghouseSimulator(
        tmp_path / "clearinghouse",
        scenario(),
        host_key=ensure_key(keys / "host"),
        authorized_keys=(public_line(keys / "client"),),
    ) as server:
        yield server


def _pinned_to(tmp_path: Path, sim: ClearinghouseSimulator, how: str) -> str:
    text = config_text(
        port=sim.port, host_key_line=sim.host_key_line, key_file=tmp_path / "keys" / "client", remote_root=""
    )
    pin_line = f"host_keys = [{json.dumps(sim.host_key_line)}]"
    if how == "changed":
        ensure_key(tmp_path / "keys" / "other")
        return text.replace(pin_line, f"host_keys = [{json.dumps(public_line(tmp_path / 'keys' / 'other'))}]")
    known = tmp_path / "known_hosts"  # a key for another host only: this server's key is unknown
    known.write_text(f"[otherhost.example]:{sim.port} {sim.host_key_line}\n")
    return text.replace(pin_line, f'known_hosts_file = "{known}"')


@pytest.mark.parametrize("how", ["unknown", "changed"])
def test_unknown_or_changed_host_key_is_refused_alerted_and_nothing_is_sent(
    tmp_path: Path, sim: ClearinghouseSimulator, events: EventLog, how: str
) -> None:
    """The connection is refused before authentication; an error-level alert names the offered
    fingerprint; the partner is paused (state change); the batch stays queued; the server got nothing."""
    ctx = _ctx(tmp_path, _pinned_to(tmp_path, sim, how))
    try:
        (ctx.config.folders.inbox / "r.json").write_text(json.dumps(eligibility("HK-1", "ZZM900000031")))
        gateway = Gateway(ctx)
        for _ in range(2):
            gateway.cycle()
        with ctx.store.read() as tx:
            assert [f.state for f in tx.files.query(direction="out")] == ["queued"]
            changes = tx.audit.list_changes(entity_type="partner", limit=10)
        paused = [c for c in changes if c.new_state == "paused"]
        assert paused
        assert "host key" in json.dumps(paused[0].detail)
        alerts = [e for e in events.events if e["_level"] == "ERROR" and "host key" in str(e.get("error"))]
        assert alerts, events.events
        assert ("unknown host key" if how == "unknown" else "host key changed") in alerts[0]["error"]
        assert "SHA256:" in alerts[0]["error"]
        received = [p for p in (sim.root / "inbound").rglob("*") if p.is_file()]
        assert received == []
    finally:
        ctx.store.close()


# --------------------------------------------------------------------------------------------- remote names

BAD_NAMES = [
    "..",
    "../outside.x12",
    "a/b.x12",
    "/etc/passwd",
    "nul\x00byte.x12",
    "new\nline.x12",
    "esc\x1b[31m.x12",
    "bidi\u202etxt.x12",
    "back\\slash.x12",
    "-rf",
    ".hidden",
    "C:evil.x12",
    "x" * 300,
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_unsafe_remote_names_are_refused_without_echoing_them(name: str) -> None:
    """Paths, '..', absolute names, NUL and control characters, leading '-' or '.': refused, and the
    reason names the problem, never the raw characters."""
    problem = remote_name_problem(name)
    assert problem is not None
    for ch in name:
        if not ch.isprintable():
            assert ch not in problem
    with pytest.raises(TransferError) as caught:
        check_remote_name(name, partner="acme", operation="download")
    assert not caught.value.retryable


class _LyingListing(RootedSftpInterface):
    """Lists files that are paths or carry control characters next to the real ones."""

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        real = super().list_folder(path)
        if isinstance(real, int):
            return real
        fakes = []
        for name in ("../../escape.x12", "/etc/passwd", "sub/dir.x12", "ctl\x07.x12", "nul\x00.x12", ".."):
            attr = paramiko.SFTPAttributes()
            attr.filename, attr.st_size, attr.st_mode, attr.st_mtime = name, 10, stat.S_IFREG | 0o600, 1
            fakes.append(attr)
        return [*real, *fakes]


class _Opens(SftpFaults):
    def __init__(self) -> None:
        self.opened: list[str] = []

    def before(self, ctx: FaultContext) -> int | None:
        if ctx.op in ("open", "stat", "remove", "rename", "posix_rename"):
            self.opened.append(ctx.path)
        return None


def test_listed_path_names_are_refused_and_only_the_real_file_is_fetched(
    tmp_path: Path, events: EventLog
) -> None:
    """A server listing '../../x', '/etc/passwd', 'a/b' or control characters: each is refused (and
    logged, escaped); the client never opens them; the real file is fetched; nothing lands outside."""
    keys = tmp_path / "keys"
    ensure_key(keys / "client")
    root = tmp_path / "server"
    (root / "outbound").mkdir(parents=True)
    (root / "inbound").mkdir()
    good = (ROOT / "sample_edi" / "responses" / "271-subscriber-active.x12").read_bytes()
    (root / "outbound" / "271-000000001.x12").write_bytes(good)
    faults = _Opens()
    server = SftpServer(
        root, ensure_key(keys / "host"), authorized_keys=(public_line(keys / "client"),), faults=faults
    )
    server.interface_class = _LyingListing
    with server:
        ctx = _ctx(
            tmp_path,
            config_text(
                port=server.port, host_key_line=server.host_key_line, key_file=keys / "client", remote_root=""
            ),
        )
        try:
            gateway = Gateway(ctx)
            for _ in range(3):
                gateway.cycle()
            with ctx.store.read() as tx:
                names = [f.name for f in tx.files.query(direction="in", limit=50)]
        finally:
            ctx.store.close()
    assert names == ["271-000000001.x12"]
    refused = [e for e in events.events if e.get("event") == "remote file refused"]
    assert len(refused) >= 6
    for e in refused:
        assert all(ch.isprintable() for ch in e["name"]), e
    assert not [p for p in faults.opened if "escape" in p or "passwd" in p or "dir.x12" in p or "ctl" in p]
    assert not list(tmp_path.rglob("escape.x12"))
    assert not (tmp_path / "passwd").exists()


# --------------------------------------------------------------------------------------------- file modes


def test_everything_the_gateway_writes_is_owner_only_even_with_umask_0(tmp_path: Path) -> None:
    """With umask 0 and the billing system's files world-readable, every file the gateway keeps
    (payloads, archive, quarantine, results, reasons) is 0600 and every folder 0700."""
    old = os.umask(0)
    try:
        ensure_key(tmp_path / "keys" / "host")
        text = config_text(
            port=22,
            host_key_line=public_line(tmp_path / "keys" / "host"),
            key_file=tmp_path / "keys" / "host",
            remote_root="",
        )
        ctx = _ctx(tmp_path, text)
        try:
            inbox = ctx.config.folders.inbox
            (inbox / "good.json").write_text(json.dumps(eligibility("FM-1", "ZZM900000041")))
            rows = csv_batch([("FM-2", "ZZM900000042"), ("FM-3", "ZZM900000043")]).decode().splitlines()
            rows.append(rows[1].replace("1234567893", "1234567890"))
            (inbox / "mixed.csv").write_text("\n".join(rows))
            (inbox / "bad.json").write_text("{not json")
            intake.intake(ctx)
            batching.batch_all(ctx)
            with ctx.store.read() as tx:
                trackings = [r.tracking_number for r in tx.requests.query(limit=10)]
            write_results(ctx, trackings, summary_name="summary-test.csv")
            response = (ROOT / "sample_edi" / "responses" / "271-subscriber-active.x12").read_bytes()
            sha, path = ctx.payloads.put(response)
            with ctx.store.begin() as tx:
                tx.files.record(
                    direction="in",
                    partner="sim",
                    name="271.x12",
                    sha256=sha,
                    size=len(response),
                    payload_path=str(path),
                    state=FileState.DOWNLOADED,
                )
            inbound.process_downloaded(ctx, load_mapping_rules(ctx.config))
            folders = ctx.config.folders
        finally:
            ctx.store.close()
    finally:
        os.umask(old)
    kept = [folders.payloads, folders.archive, folders.quarantine, folders.outbox, folders.work]
    loose = [
        f"{p.relative_to(tmp_path)} {stat.S_IMODE(p.stat().st_mode):04o}"
        for folder in kept
        for p in [folder, *folder.rglob("*")]
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    ]
    assert not loose, loose
    assert any(folders.quarantine.iterdir())
    assert any(folders.archive.iterdir())
    for _name, folder in folders.items():
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


# --------------------------------------------------------------------------------------------- the CLI


def _cli(
    args: list[str], log_dir: Path, name: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``x12gw ARGS`` in a subprocess; its stderr (JSON logs) is kept for the PHI canary scan."""
    argv = [str(X12GW)] if X12GW.exists() else [sys.executable, "-m", "gateway.cli"]
    done = subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=60,
        check=False,
    )
    (log_dir / f"security-{name}.log").write_text(done.stderr)
    return done


def test_private_key_readable_by_others_is_refused_with_a_clear_error(
    tmp_path: Path, phi_log_dir: Path
) -> None:
    """``x12gw run`` refuses to start with a key file of mode 0644 and says what to do."""
    key = tmp_path / "keys" / "client"
    ensure_key(key)
    host = ensure_key(tmp_path / "keys" / "host")
    key.chmod(0o644)
    config = tmp_path / "gateway.toml"
    config.write_text(
        config_text(port=2222, host_key_line=f"ssh-ed25519 {host.get_base64()}", key_file=key, remote_root="")
    )
    done = _cli(["run", "--once", "--config", str(config)], phi_log_dir, "key-mode")
    assert done.returncode == 2
    assert "accessible by group or others" in done.stderr
    assert "chmod 600" in done.stderr
    assert "Traceback" not in done.stderr


CONFIDENTIAL_TEXT = "TOP-SECRET-CANARY-LINE"


# Entity b is ten a's, c ten b's ... h is 10**8 characters if anything ever expanded it.
LAUGHS = "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefg", "bcdefgh", strict=True))


def _xxe_documents(secret: Path, port: int) -> dict[str, bytes]:
    field = '<field record="authorization" name="certification_number" path="seg/ele"/>'
    return {
        "external-entity": (
            f'<?xml version="1.0"?><!DOCTYPE o [<!ENTITY x SYSTEM "file://{secret}">]>'
            f'<overrides><payer id="&x;">{field}</payer></overrides>'
        ).encode(),
        "parameter-entity": (
            f'<?xml version="1.0"?><!DOCTYPE o [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p.dtd"> %p;]>'
            f'<overrides><payer id="A">{field}</payer></overrides>'
        ).encode(),
        "external-dtd": (
            f'<?xml version="1.0"?><!DOCTYPE o SYSTEM "http://127.0.0.1:{port}/o.dtd">'
            f'<overrides><payer id="A">{field}</payer></overrides>'
        ).encode(),
        "billion-laughs": (
            '<?xml version="1.0"?><!DOCTYPE o [<!ENTITY a "aaaaaaaaaa">'
            + LAUGHS
            + f']><overrides><payer id="&h;">{field}</payer></overrides>'
        ).encode(),
        "utf16-external-entity": (
            f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE o [<!ENTITY x SYSTEM "file://{secret}">]>'
            f'<overrides><payer id="&x;">{field}</payer></overrides>'
        ).encode("utf-16"),
        "xinclude": (
            '<?xml version="1.0"?><overrides xmlns:xi="http://www.w3.org/2001/XInclude">'
            f'<payer id="A"><xi:include href="file://{secret}" parse="text"/>{field}</payer></overrides>'
        ).encode(),
    }


def _load_overrides(kind: str, document: bytes) -> str:
    """The loaded payer rules as text, or the error that refused the document."""
    try:
        return repr(with_overrides(default_rules(), [(f"{kind}.xml", document)]).payers)
    except X12GatewayError as exc:
        return str(exc)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback TCP port that records whether anybody connected (no XML parser may)."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def test_mapping_xml_cannot_read_files_or_reach_the_network(tmp_path: Path, listener: socket.socket) -> None:
    """External entities, parameter entities, external DTDs, entity bombs, a UTF-16 disguise and
    XInclude in an override file: refused (or inert); the secret file's text never comes out, and
    nobody connects to the network."""
    secret = tmp_path / "secret.txt"
    secret.write_text(CONFIDENTIAL_TEXT)
    port = listener.getsockname()[1]
    for kind, document in _xxe_documents(secret, port).items():
        shown = _load_overrides(kind, document)
        assert CONFIDENTIAL_TEXT not in shown, kind
        assert "aaaaaaaaaaaaaaaaaaaa" not in shown, kind
    with pytest.raises(TimeoutError):
        listener.accept()


def test_gateway_refuses_to_start_on_an_xxe_override_file(
    tmp_path: Path, listener: socket.socket, phi_log_dir: Path
) -> None:
    """An override folder holding an XXE file: ``x12gw run`` exits 2 with the reason; the secret file
    is neither read into the output nor is the network touched."""
    secret = tmp_path / "secret.txt"
    secret.write_text(CONFIDENTIAL_TEXT)
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    (overrides / "evil.xml").write_bytes(_xxe_documents(secret, listener.getsockname()[1])["external-entity"])
    key = tmp_path / "keys" / "client"
    ensure_key(key)
    text = config_text(port=2222, host_key_line=public_line(key), key_file=key, remote_root="")
    config = tmp_path / "gateway.toml"
    config.write_text(text + f'\n[mappings]\noverride_dir = "{overrides}"\n')
    done = _cli(["run", "--once", "--config", str(config)], phi_log_dir, "xxe")
    assert done.returncode == 2, done.stderr
    assert "DTDs and entities are not allowed" in done.stderr
    assert CONFIDENTIAL_TEXT not in done.stderr + done.stdout
    with pytest.raises(TimeoutError):
        listener.accept()


SECRETS = {
    "X12GW_TEST_SFTP_PASSWORD": "sftp-pw-canary-Q7x9",
    "X12GW_TEST_DB_PASSWORD": "db-pw-canary-M3k8",
    "X12GW_TEST_PASSPHRASE": "passphrase-canary-Z5v2",
    "X12GW_MEMBER_HASH_KEY": "member-hash-key-canary-0123456789abcdef",
}


def _assert_no_secret(text: str, what: str) -> None:
    for value in SECRETS.values():
        assert value not in text, f"{what} shows a secret"


def test_secrets_never_reach_logs_json_or_error_messages(
    tmp_path: Path, sim: ClearinghouseSimulator, phi_log_dir: Path
) -> None:
    """Environment secrets (SFTP password that the server rejects, DB password for a database that
    is down, member hash key) appear in no log line, no --json output and no error message."""
    base = config_text(
        port=sim.port, host_key_line=sim.host_key_line, key_file=tmp_path / "keys" / "client", remote_root=""
    )
    key_line = f'key_file = "{tmp_path / "keys" / "client"}"'
    with_password = base.replace(key_line, 'password_env = "X12GW_TEST_SFTP_PASSWORD"')
    gw = tmp_path / "gw"
    gw.mkdir()
    config = gw / "gateway.toml"
    config.write_text(with_password)
    inbox = gw / "inbox"
    inbox.mkdir()
    (inbox / "r.json").write_text(json.dumps(eligibility("SEC-1", "ZZM900000051")))
    outputs = []
    run = _cli(["run", "--once", "--config", str(config)], phi_log_dir, "secret-run", env=SECRETS, cwd=gw)
    assert run.returncode == 1, run.stderr  # the partner failed: --once says so (issue 15)
    assert "authentication failed" in run.stderr
    outputs.append(("run", run.stderr + run.stdout))

    def json_output(command: list[str]) -> tuple[str, str]:
        args = [*command, "--json", "--config", str(config)]
        done = _cli(args, phi_log_dir, f"secret-{'-'.join(command)}", env=SECRETS, cwd=gw)
        return " ".join(command), done.stdout + done.stderr

    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs += list(pool.map(json_output, _json_commands()))

    down = with_password.replace(
        "[gateway]\n",
        '[gateway]\ndatabase_url = "postgresql+psycopg://gw@127.0.0.1:1/gw"\n'
        'database_password_env = "X12GW_TEST_DB_PASSWORD"\n',
    )
    config.write_text(down)
    failed = _cli(["run", "--once", "--config", str(config)], phi_log_dir, "secret-db", env=SECRETS, cwd=gw)
    assert failed.returncode == 2
    assert "x12gw: error:" in failed.stderr
    outputs.append(("run with the database down", failed.stderr + failed.stdout))
    for what, text in outputs:
        _assert_no_secret(text, what)


def _json_commands() -> list[list[str]]:
    """Every subcommand (and sub-subcommand) that takes both --json and --config, whatever this
    version of the CLI offers: found by walking its argparse tree."""
    found: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        options = {o for action in parser._actions for o in action.option_strings}
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        positional = [a for a in parser._actions if not a.option_strings and a not in subs]
        if path and {"--json", "--config"} <= options and not subs and not positional:
            found.append(path)
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, [*path, name])

    walk(make_parser(), [])
    return [c for c in found if c[0] not in ("run", "demo", "sim", "reprocess", "resend") and c[-1] != "tail"]


def test_secret_values_are_absent_from_gateway_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A wrong SFTP password and a missing secret variable: the errors name the variable, not a value."""
    monkeypatch.setenv("X12GW_TEST_SFTP_PASSWORD", SECRETS["X12GW_TEST_SFTP_PASSWORD"])
    keys = tmp_path / "keys"
    root = tmp_path / "root"
    root.mkdir()
    with SftpServer(root, ensure_key(keys / "host"), password="the-real-one") as server:  # noqa: S106
        text = config_text(
            port=server.port, host_key_line=server.host_key_line, key_file=keys / "host", remote_root=""
        ).replace(f'key_file = "{keys / "host"}"', 'password_env = "X12GW_TEST_SFTP_PASSWORD"')
        partner = parse_config(tomllib.loads(text), tmp_path).partners[0]
        from gateway.transport.sftp import SftpClient  # noqa: PLC0415

        with pytest.raises(TransferError) as caught, SftpClient(partner.sftp_endpoint()):
            pass
    assert "authentication failed" in str(caught.value)
    _assert_no_secret(f"{caught.value!r} {caught.value}", "the transfer error")
    monkeypatch.delenv("X12GW_TEST_SFTP_PASSWORD")
    with pytest.raises(X12GatewayError) as missing:
        partner.sftp_endpoint()
    assert "X12GW_TEST_SFTP_PASSWORD" in str(missing.value)
    time.sleep(0)
