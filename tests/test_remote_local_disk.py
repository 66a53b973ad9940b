"""Our own disk filling up during a download is our problem, not the partner's: the exchange fails
(the run loop logs it and retries next cycle) but the partner is neither counted as failing nor
paused, and the file is taken as soon as space returns (issue 19). A real 2 MB tmpfs is the work
folder; the test is skipped, with the reason, where mounting is not allowed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import TransferError
from gateway.runtime.runner import Gateway
from gateway.stages import exchange
from tests.remote_support import Reach, inbound_files, make_context, partner_section, put_remote
from tests.sftp_support import SftpTarget
from tests.test_precert import KEY

pytest_plugins = ["tests.sftp_fixtures"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for this test (needs root or CAP_SYS_ADMIN)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); run as root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the filesystem of ``folder`` until about ``leave`` bytes are free; the filler file."""
    filler = folder / "filler"
    info = os.statvfs(folder)
    free = info.f_bavail * info.f_frsize
    filler.write_bytes(b"\0" * max(0, free - leave))
    return filler


def test_a_full_local_disk_is_retried_and_never_blamed_on_the_partner(
    tmp_path: Path, small_disk: Path, paramiko_target: SftpTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full mid-download: an error for the run loop, the partner not failing nor paused, the
    remote file kept; once space is back the very next exchange takes it."""
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", KEY)
    target = paramiko_target
    down, remote = target.new_dir("out")
    up, _ = target.new_dir("in")
    reach = Reach(
        target.host, target.port, target.username, target.keys.by_kind["ed25519"], target.host_key_line
    )
    section = partner_section(reach, down, up, retry_attempts=2, pause_after_failures=1)
    ctx = make_context(tmp_path / "gw", [section], folders={"work": str(small_disk / "work")})
    try:
        (partner,) = ctx.config.partners
        data = b"ISA*" + b"x" * 600_000 + b"~"
        put_remote(remote / "271.x12", data, 1_767_000_000)
        exchange.exchange(ctx, partner)  # the first listing
        filler = _fill(small_disk, leave=100_000)
        with pytest.raises(TransferError) as failure:
            exchange.exchange(ctx, partner)
        assert failure.value.local
        assert "No space left on device" in str(failure.value)
        health = ctx.health.of(partner.name)
        assert (health.failures, health.paused_until) == (0, None)
        summary = Gateway(ctx).cycle()
        assert summary.errors >= 1, "the run loop counts the local failure"
        assert (health.failures, health.paused_until) == (0, None)
        with ctx.store.read() as tx:
            assert tx.audit.history("partner", 0) == [], "no pause was logged"
        assert inbound_files(ctx) == []
        assert (remote / "271.x12").exists()
        assert [p.name for p in (small_disk / "work" / "downloads" / "acme").iterdir()] == []
        filler.unlink()
        exchange.exchange(ctx, partner)
        assert inbound_files(ctx) == [data]
        assert not (remote / "271.x12").exists()
    finally:
        ctx.store.close()
