"""SFTP client against real servers: the in-process paramiko server and OpenSSH's sshd."""

from __future__ import annotations

import dataclasses
import hashlib
import stat
import threading
from pathlib import Path

import paramiko
import pytest
from paramiko.sftp import SFTP_FAILURE, SFTP_PERMISSION_DENIED

from gateway.errors import ConfigError, GatewayError, HostKeyError, TransferError
from gateway.transport.sftp import (
    SftpClient,
    SftpEndpoint,
    check_remote_name,
    part_name,
    remote_name_problem,
    retry,
)
from payersim.sftp_server import FaultContext, SftpFaults, SftpServer
from tests.sftp_support import KEY_KINDS, SFTP_PASSWORD, SftpTarget, new_host_key_line, write_private_key
from transactions.errors import X12GatewayError

pytest_plugins = ["tests.sftp_fixtures"]

BAD_NAMES = [
    ("", "empty"),
    ("a/b.x12", "'/'"),
    ("a\\b.x12", "backslash"),
    ("a..b", "'..'"),
    ("..", "'..'"),
    ("bell\x07.x12", "U+0007"),
    ("nul\x00.x12", "NUL"),
    ("esc\x1b[31m.x12", "U+001B"),
    ("-rf.x12", "'-'"),
    (".hidden", "'.'"),
    ("/etc/passwd", "'/'"),
    ("C:evil.x12", "drive"),
    ("rtl\u202egpj.x12", "U+202E"),
    ("x" * 256, "255 bytes"),
    ("é" * 128, "255 bytes"),
]


def _write(path: Path, size: int, seed: int = 0) -> Path:
    """Write ``size`` bytes of deterministic, non-repeating-ish content."""
    block = hashlib.sha256(str(seed).encode()).digest()
    data = (block * (size // len(block) + 1))[:size]
    path.write_bytes(data)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _server(tmp_path: Path, faults: SftpFaults) -> tuple[SftpServer, Path]:
    """A dedicated paramiko server (for tests with their own faults) and its key file."""
    root = tmp_path / "root"
    root.mkdir()
    key_file = write_private_key(tmp_path / "client_key")
    host_key = paramiko.PKey.from_path(write_private_key(tmp_path / "host_key"))
    client_pub = Path(f"{key_file}.pub").read_text()
    return SftpServer(root, host_key, authorized_keys=[client_pub], faults=faults), key_file


# --------------------------------------------------------------------------- both servers


def test_round_trip_upload_list_download_move_delete(sftp_target: SftpTarget, tmp_path: Path) -> None:
    """A file survives upload, listing, download (sha256 + size), move and delete unchanged."""
    remote, local_remote = sftp_target.new_dir("trip")
    archive, local_archive = sftp_target.new_dir("archive")
    source = _write(tmp_path / "out.x12", 300_000, seed=1)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with SftpClient(sftp_target.endpoint()) as client:
        entry = client.upload(source, remote, "271_0001.x12")
        assert (entry.name, entry.size) == ("271_0001.x12", 300_000)
        assert (local_remote / "271_0001.x12").read_bytes() == source.read_bytes()
        assert not (local_remote / part_name("271_0001.x12")).exists()
        listed = client.list(remote)
        assert [(e.name, e.size) for e in listed] == [("271_0001.x12", 300_000)]
        assert listed[0].mtime is not None
        path, digest, size = client.download(remote, "271_0001.x12", inbox)
        assert path == inbox / "271_0001.x12"
        assert (digest, size) == (_sha(source), 300_000)
        assert _sha(path) == digest
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert sorted(p.name for p in inbox.iterdir()) == ["271_0001.x12"]
        client.move(remote, "271_0001.x12", archive)
        assert client.list(remote) == ()
        assert (local_archive / "271_0001.x12").read_bytes() == source.read_bytes()
        client.move(remote, "271_0001.x12", archive)  # a retry after a lost reply is a no-op
        assert client.delete(archive, "271_0001.x12") is True
        assert client.delete(archive, "271_0001.x12") is False
        assert client.stat(archive, "271_0001.x12") is None


def test_empty_file_round_trip(sftp_target: SftpTarget, tmp_path: Path) -> None:
    """A zero-byte file uploads and downloads with the sha256 of the empty string."""
    remote, _ = sftp_target.new_dir("empty")
    source = _write(tmp_path / "empty.x12", 0)
    with SftpClient(sftp_target.endpoint()) as client:
        assert client.upload(source, remote, "empty.x12").size == 0
        result = client.download(remote, "empty.x12", tmp_path)
    assert (result.size, result.sha256) == (0, hashlib.sha256(b"").hexdigest())


def test_reupload_is_idempotent_and_different_size_is_refused(
    sftp_target: SftpTarget, tmp_path: Path
) -> None:
    """Uploading the same file again is a no-op; a same-named file of another size is not overwritten."""
    remote, local_remote = sftp_target.new_dir("idem")
    source = _write(tmp_path / "a.x12", 5000, seed=2)
    with SftpClient(sftp_target.endpoint()) as client:
        first = client.upload(source, remote, "a.x12")
        second = client.upload(source, remote, "a.x12")
        assert (first.name, first.size) == (second.name, second.size)
        other = _write(tmp_path / "b.x12", 4000, seed=3)
        with pytest.raises(TransferError) as info:
            client.upload(other, remote, "a.x12")
    assert info.value.retryable is False
    assert "already exists" in str(info.value)
    assert (local_remote / "a.x12").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in local_remote.iterdir()) == ["a.x12"]


def test_stale_part_file_from_failed_attempt_is_replaced(sftp_target: SftpTarget, tmp_path: Path) -> None:
    """A leftover .NAME.part from a crashed upload is overwritten, not appended to."""
    remote, local_remote = sftp_target.new_dir("stale")
    (local_remote / part_name("c.x12")).write_bytes(b"garbage from an earlier attempt" * 100)
    source = _write(tmp_path / "c.x12", 1000, seed=4)
    with SftpClient(sftp_target.endpoint()) as client:
        client.upload(source, remote, "c.x12")
    assert (local_remote / "c.x12").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in local_remote.iterdir()) == ["c.x12"]


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_each_client_key_type_authenticates(sftp_target: SftpTarget, kind: str) -> None:
    """ed25519, ECDSA and RSA private key files all log in."""
    remote, _ = sftp_target.new_dir(f"key-{kind}")
    with SftpClient(sftp_target.endpoint(key=kind)) as client:
        assert client.list(remote) == ()


def test_unknown_host_key_is_refused(sftp_target: SftpTarget, tmp_path: Path) -> None:
    """A known_hosts file without this server refuses the connection, showing the offered fingerprint."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[otherhost]:2222 {sftp_target.host_key_line}\n")
    endpoint = sftp_target.endpoint(host_keys=(), known_hosts_file=known_hosts)
    with pytest.raises(HostKeyError) as info:
        SftpClient(endpoint).connect()
    offered = paramiko.PKey.from_type_string(*_split(sftp_target.host_key_line)).fingerprint
    assert info.value.offered_fingerprint == offered
    assert offered in str(info.value)
    assert offered.startswith("SHA256:")
    assert info.value.retryable is False


def test_changed_host_key_is_refused(sftp_target: SftpTarget) -> None:
    """A server whose key differs from the pinned one is refused with both fingerprints named."""
    endpoint = sftp_target.endpoint(host_keys=(new_host_key_line(),))
    with pytest.raises(HostKeyError) as info:
        SftpClient(endpoint).connect()
    offered = paramiko.PKey.from_type_string(*_split(sftp_target.host_key_line)).fingerprint
    assert info.value.offered_fingerprint == offered
    assert "changed" in str(info.value)


@pytest.mark.parametrize("hashed", [False, True])
def test_known_hosts_file_pins_the_key(sftp_target: SftpTarget, tmp_path: Path, hashed: bool) -> None:
    """A known_hosts line for [host]:port, plain or hashed (ssh-keygen -H style), is accepted as the pin."""
    name = f"[{sftp_target.host}]:{sftp_target.port}"
    host_field = paramiko.HostKeys.hash_host(name) if hashed else name
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"# comment\n[otherhost]:22 {new_host_key_line()}\n{host_field} {sftp_target.host_key_line}\n"
    )
    remote, _ = sftp_target.new_dir("kh")
    with SftpClient(sftp_target.endpoint(host_keys=(), known_hosts_file=known_hosts)) as client:
        assert client.list(remote) == ()


def test_server_without_any_pinned_key_type_is_refused(sftp_target: SftpTarget) -> None:
    """Pinning only an ECDSA key for an ed25519-only server refuses the connection as a host key error."""
    endpoint = sftp_target.endpoint(host_keys=(new_host_key_line("ecdsa"),))
    with pytest.raises(HostKeyError, match="none of the pinned host key types"):
        SftpClient(endpoint).connect()


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_host_key_of_each_type_is_verified_among_several_pins(tmp_path: Path, kind: str) -> None:
    """ed25519/ECDSA/RSA host keys verify when pinned next to unrelated keys (e.g. during key rotation)."""
    root = tmp_path / "root"
    root.mkdir()
    key_file = write_private_key(tmp_path / "client_key")
    host_key = paramiko.PKey.from_path(write_private_key(tmp_path / "host_key", kind))
    server = SftpServer(root, host_key, authorized_keys=[Path(f"{key_file}.pub").read_text()])
    with server:
        pins = (new_host_key_line("ed25519"), new_host_key_line("ecdsa"), server.host_key_line)
        endpoint = dataclasses.replace(server.endpoint(key_file=key_file), host_keys=pins)
        with SftpClient(endpoint) as client:
            assert client.list("/") == ()
        wrong = dataclasses.replace(endpoint, host_keys=pins[:2])
        with pytest.raises(HostKeyError) as info:
            SftpClient(wrong).connect()
    if kind != "rsa":  # an RSA-only server cannot show a key of a pinned type
        assert info.value.offered_fingerprint == host_key.fingerprint


def test_wrong_client_key_is_refused(sftp_target: SftpTarget) -> None:
    """An unauthorised client key fails authentication, not retryable."""
    endpoint = sftp_target.endpoint(key_file=sftp_target.keys.stranger)
    with pytest.raises(TransferError) as info:
        SftpClient(endpoint).connect()
    assert not isinstance(info.value, HostKeyError)
    assert info.value.retryable is False
    assert "authentication failed" in str(info.value)


def test_private_key_readable_by_others_is_refused(sftp_target: SftpTarget, tmp_path: Path) -> None:
    """A private key file with mode 0644 is refused before any connection, like ssh does."""
    key_file = write_private_key(tmp_path / "loose_key")
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        SftpClient(sftp_target.endpoint(key_file=key_file)).connect()


@pytest.mark.parametrize(("name", "reason"), BAD_NAMES)
def test_bad_names_are_refused_for_upload_and_download(
    sftp_target: SftpTarget, tmp_path: Path, name: str, reason: str
) -> None:
    """Unsafe names are refused (non-retryable) both ways; the message names the problem, not raw bytes."""
    remote, local_remote = sftp_target.new_dir("badname")
    source = _write(tmp_path / "ok.x12", 10)
    with SftpClient(sftp_target.endpoint()) as client:
        attempts = (
            lambda: client.upload(source, remote, name),
            lambda: client.download(remote, name, tmp_path),
        )
        for attempt in attempts:
            with pytest.raises(TransferError) as info:
                attempt()
            message = str(info.value)
            assert info.value.retryable is False
            assert reason in message
            assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch == "\u202e" for ch in message)
    assert list(local_remote.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.x12"]


def test_listing_sets_aside_unsafe_names(sftp_target: SftpTarget) -> None:
    """Listed files with unsafe names are reported as rejected; hidden files and folders are skipped."""
    remote, local_remote = sftp_target.new_dir("listing")
    for name in ("good.x12", "-rf.x12", "bell\x07.x12", "a..b.x12", ".upload.part"):
        (local_remote / name).write_bytes(b"x")
    (local_remote / "subdir").mkdir()
    with SftpClient(sftp_target.endpoint()) as client:
        listing = client.scan(remote)
        assert [e.name for e in listing.entries] == ["good.x12"]
        assert client.list(remote) == listing.entries
    rejected = sorted(listing.rejected, key=lambda r: r.reason)
    assert [r.reason for r in rejected] == [
        "name contains '..'",
        "name contains control character U+0007 at position 4",
        "name starts with '-'",
    ]
    assert all("\x07" not in r.display for r in rejected)


def test_missing_remote_file_is_not_retryable_and_leaves_no_temp_file(
    sftp_target: SftpTarget, tmp_path: Path
) -> None:
    """Downloading a file that is not there fails for good and cleans up its temporary file."""
    remote, _ = sftp_target.new_dir("missing")
    with SftpClient(sftp_target.endpoint()) as client, pytest.raises(TransferError) as info:
        client.download(remote, "nope.x12", tmp_path)
    assert info.value.retryable is False
    assert list(tmp_path.iterdir()) == []


def test_stalled_server_times_out_as_retryable(sftp_target: SftpTarget) -> None:
    """A server that stops answering makes the operation fail retryably within the client timeout."""
    remote, _ = sftp_target.new_dir("stall")
    client = SftpClient(sftp_target.endpoint(timeout=1.0))
    with client:
        client.list(remote)
        with sftp_target.stalled(), pytest.raises(TransferError) as info:
            client.list(remote)
        assert info.value.retryable is True
        assert not client.connected  # the unreliable session was dropped
    with SftpClient(sftp_target.endpoint()) as fresh:
        assert fresh.list(remote) == ()


def test_concurrent_clients(sftp_target: SftpTarget, tmp_path: Path) -> None:
    """Several clients at once each upload and read back their own file."""
    remote, local_remote = sftp_target.new_dir("concurrent")
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            source = _write(tmp_path / f"f{index}.x12", 50_000 + index, seed=index)
            out = tmp_path / f"in{index}"
            out.mkdir()
            with SftpClient(sftp_target.endpoint()) as client:
                client.upload(source, remote, f"f{index}.x12")
                assert client.download(remote, f"f{index}.x12", out).sha256 == _sha(source)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in local_remote.iterdir()) == [f"f{i}.x12" for i in range(5)]


# --------------------------------------------------------------------------- paramiko server only


def test_password_auth(paramiko_target: SftpTarget) -> None:
    """Password login works, a wrong password is refused, and the password never shows in repr."""
    remote, _ = paramiko_target.new_dir("pw")
    good = paramiko_target.endpoint(key=None, password=SFTP_PASSWORD)
    assert SFTP_PASSWORD not in repr(good)
    with SftpClient(good) as client:
        assert client.list(remote) == ()
    bad = paramiko_target.endpoint(key=None, password="wrong")  # noqa: S106 - a deliberately wrong password
    with pytest.raises(TransferError) as info:
        SftpClient(bad).connect()
    assert info.value.retryable is False
    assert "wrong" not in str(info.value)


def test_paths_escaping_the_root_are_refused(paramiko_target: SftpTarget) -> None:
    """The in-process server refuses '..' above its root and symlinks pointing outside it."""
    (paramiko_target.root / "outside-link").symlink_to("/etc")
    with SftpClient(paramiko_target.endpoint()) as client:
        for path in ("/..", "../etc", "/outside-link"):
            with pytest.raises(TransferError) as info:
                client.list(path)
            assert info.value.retryable is False


def test_server_operations_follow_openssh_semantics(paramiko_target: SftpTarget) -> None:
    """mkdir/stat/lstat/rename/posix_rename/remove/rmdir behave as on OpenSSH (rename never replaces)."""
    remote, local = paramiko_target.new_dir("ops")
    with SftpClient(paramiko_target.endpoint()) as client:
        sftp = client.connect()
        sftp.mkdir(f"{remote}/sub")
        assert (local / "sub").is_dir()
        for name, data in (("a", b"1"), ("b", b"22")):
            with sftp.open(f"{remote}/{name}", "wb") as handle:
                handle.write(data)
        assert sftp.stat(f"{remote}/b").st_size == 2
        assert sftp.lstat(f"{remote}/a").st_size == 1
        with pytest.raises(OSError, match="Failure"):
            sftp.rename(f"{remote}/a", f"{remote}/b")
        sftp.posix_rename(f"{remote}/a", f"{remote}/b")
        assert (local / "b").read_bytes() == b"1"
        assert sorted(a.filename for a in sftp.listdir_attr(remote)) == ["b", "sub"]
        assert sftp.normalize(f"{remote}/sub/../b") == f"{remote}/b"
        sftp.remove(f"{remote}/b")
        sftp.rmdir(f"{remote}/sub")
        with pytest.raises(FileNotFoundError):
            sftp.stat(f"{remote}/b")
    assert list(local.iterdir()) == []


class _DropMidUpload(SftpFaults):
    """Cut the first connection once 64 KiB of an upload have been written."""

    def before(self, ctx: FaultContext) -> int | None:
        if ctx.op == "write" and ctx.session.number == 1 and ctx.offset >= 65536:
            ctx.session.drop()
            return SFTP_FAILURE
        return None


def test_dropped_connection_mid_upload_is_retried(tmp_path: Path) -> None:
    """A connection cut mid-upload is a retryable error; the retry reconnects and completes the upload."""
    server, key_file = _server(tmp_path, _DropMidUpload())
    source = _write(tmp_path / "big.x12", 400_000, seed=9)
    retries: list[tuple[int, bool, float]] = []
    sleeps: list[float] = []
    with server, SftpClient(server.endpoint(key_file=key_file, timeout=5)) as client:
        entry = retry(
            lambda: client.upload(source, "/", "big.x12"),
            attempts=3,
            base_delay=0.5,
            max_delay=2,
            sleep=sleeps.append,
            rng=lambda: 0.5,
            on_retry=lambda n, err, delay: retries.append((n, err.retryable, delay)),
        )
        assert server.connections == 2
    assert entry.size == 400_000
    assert retries == [(1, True, 0.25)]
    assert sleeps == [0.25]
    assert (server.root / "big.x12").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in server.root.iterdir()) == ["big.x12"]


class _DenyOpen(SftpFaults):
    def before(self, ctx: FaultContext) -> int | None:
        return SFTP_PERMISSION_DENIED if ctx.op == "open" else None


def test_permission_denied_is_not_retryable(tmp_path: Path) -> None:
    """A server-side permission error maps to a non-retryable TransferError naming partner and operation."""
    server, key_file = _server(tmp_path, _DenyOpen())
    source = _write(tmp_path / "p.x12", 100)
    with server, SftpClient(server.endpoint(key_file=key_file, partner="acme")) as client:
        with pytest.raises(TransferError) as info:
            client.upload(source, "/", "p.x12")
        assert client.connected  # a permanent error keeps the session
    assert info.value.retryable is False
    assert (info.value.partner, info.value.operation) == ("acme", "upload")
    assert str(info.value).startswith("sftp acme: upload p.x12 failed: Permission denied")


class _StallBanner(SftpFaults):
    def before(self, ctx: FaultContext) -> int | None:
        if ctx.op == "connect":
            ctx.session.stall(30)
        return None


def test_server_that_never_sends_a_banner_times_out(tmp_path: Path) -> None:
    """A server that accepts TCP but never speaks SSH gives a retryable error within the timeout."""
    server, key_file = _server(tmp_path, _StallBanner())
    with server, pytest.raises(TransferError) as info:
        SftpClient(server.endpoint(key_file=key_file, timeout=1.0)).connect()
    assert info.value.retryable is True


def test_connection_refused_is_retryable(tmp_path: Path) -> None:
    """Nobody listening on the port is a retryable connect failure."""
    server, key_file = _server(tmp_path, SftpFaults())
    with server:
        endpoint = server.endpoint(key_file=key_file, timeout=2.0)
    with pytest.raises(TransferError) as info:
        SftpClient(endpoint).connect()
    assert info.value.retryable is True
    assert info.value.operation == "connect"


def test_sequential_connections_are_served(paramiko_target: SftpTarget) -> None:
    """The in-process server keeps accepting connection after connection."""
    assert paramiko_target.server is not None
    remote, _ = paramiko_target.new_dir("seq")
    before = paramiko_target.server.connections
    for _ in range(3):
        with SftpClient(paramiko_target.endpoint()) as client:
            assert client.list(remote) == ()
    assert paramiko_target.server.connections == before + 3


# --------------------------------------------------------------------------- no server


@pytest.mark.parametrize(("name", "reason"), BAD_NAMES)
def test_remote_name_problem_names_the_reason(name: str, reason: str) -> None:
    """Each unsafe name yields a reason that mentions what is wrong."""
    problem = remote_name_problem(name)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize("name", ["271_20240101_0001.x12", "A-B_c.d.edi", "x" * 255, "é" * 127, "a-b"])
def test_safe_names_pass(name: str) -> None:
    """Ordinary clearinghouse file names are accepted unchanged."""
    assert check_remote_name(name) == name


def test_retry_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    """Delays are rng() * min(max_delay, base * 2**n); the last error is raised after `attempts` tries."""
    calls: list[int] = []
    sleeps: list[float] = []

    def failing() -> None:
        calls.append(1)
        raise TransferError("dropped", retryable=True)

    with pytest.raises(TransferError, match="dropped"):
        retry(failing, attempts=6, base_delay=1.0, max_delay=10.0, sleep=sleeps.append, rng=lambda: 1.0)
    assert len(calls) == 6
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 10.0]
    sleeps.clear()
    with pytest.raises(TransferError):
        retry(failing, attempts=3, base_delay=1.0, max_delay=10.0, sleep=sleeps.append, rng=lambda: 0.25)
    assert sleeps == [0.25, 0.5]


def test_retry_does_not_retry_permanent_errors_and_returns_result() -> None:
    """Non-retryable errors and other exceptions pass straight through; success returns the value."""
    sleeps: list[float] = []
    failures = [TransferError("flaky", retryable=True)]

    def flaky() -> str:
        if failures:
            raise failures.pop()
        return "done"

    result = retry(flaky, attempts=3, base_delay=0.1, max_delay=1, sleep=sleeps.append, rng=lambda: 1.0)
    assert result == "done"
    assert sleeps == [0.1]

    def permanent() -> None:
        raise TransferError("denied", retryable=False)

    with pytest.raises(TransferError, match="denied"):
        retry(permanent, attempts=5, base_delay=1, max_delay=1, sleep=sleeps.append)
    with pytest.raises(ValueError, match="boom"):
        retry(lambda: int("boom"), attempts=5, base_delay=1, max_delay=1, sleep=sleeps.append)
    assert sleeps == [0.1]
    with pytest.raises(ConfigError):
        retry(lambda: None, attempts=0, base_delay=1, max_delay=1)


def test_endpoint_validation_and_repr(tmp_path: Path) -> None:
    """An endpoint needs credentials and a pinned host key; its repr never shows the password."""
    with pytest.raises(ConfigError, match="pin"):
        SftpEndpoint("h", 22, "u", password="pw")  # noqa: S106
    with pytest.raises(ConfigError, match="key_file or a password"):
        SftpEndpoint("h", 22, "u", host_keys=(new_host_key_line(),))
    # a bare line instead of a tuple is the slip under test, hence the ignore
    endpoint = SftpEndpoint("h", 22, "u", password="hunter2", host_keys=new_host_key_line())  # type: ignore[arg-type]  # noqa: S106
    assert "hunter2" not in repr(endpoint)
    assert isinstance(endpoint.host_keys, tuple)
    bad_pin = SftpEndpoint("h", 22, "u", password="pw", host_keys=("ssh-ed25519 not-base64!",))  # noqa: S106
    with pytest.raises(ConfigError, match="not valid"):
        SftpClient(bad_pin).connect()


def test_errors_share_the_project_root() -> None:
    """Gateway errors are X12GatewayErrors, and HostKeyError is a never-retryable TransferError."""
    err = HostKeyError("changed", offered_fingerprint="SHA256:x")
    assert isinstance(err, TransferError)
    assert isinstance(err, GatewayError)
    assert isinstance(err, X12GatewayError)
    assert err.retryable is False


def _split(line: str) -> tuple[str, bytes]:
    import base64  # noqa: PLC0415

    key_type, blob = line.split()[:2]
    return key_type, base64.b64decode(blob)
