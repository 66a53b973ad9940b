"""``atomic_write`` and ``atomic_write_all``: files written whole, owner-only, with no temporary file left."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.runtime.fsutil import LocalIOError, atomic_write, atomic_write_all


@pytest.mark.parametrize("count", [1, 2, 30])
def test_every_file_is_written_whole_and_replaces_the_old_one(tmp_path: Path, count: int) -> None:
    """Each target holds its new bytes (an old file is replaced), its mode is 0600, and only the
    targets remain in the folder."""
    (tmp_path / "r0.json").write_bytes(b"old")
    items = [(f"r{i}.json", f"result {i}".encode() * 50) for i in range(count)]
    atomic_write_all(tmp_path, items)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(name for name, _ in items)
    for name, data in items:
        assert (tmp_path / name).read_bytes() == data
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A target that cannot be written (its name is a folder) raises, and no '.tmp' file is left."""
    (tmp_path / "busy.json").mkdir()
    items = [(f"r{i}.json", b"x") for i in range(8)] + [("busy.json", b"y")]
    with pytest.raises(Exception):  # noqa: B017, PT011 - the project's write error, whichever it is
        atomic_write_all(tmp_path, items)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# sizes around the pipe/page and buffered-writer boundaries, and well past them
_SIZES = st.sampled_from([0, 1, 4095, 4096, 4097, 8192, 65537, 1 << 20]) | st.integers(0, 20_000)


@settings(max_examples=25, deadline=None)
@given(size=_SIZES)
def test_atomic_write_writes_every_byte_and_replaces_the_old_file(
    tmp_path_factory: pytest.TempPathFactory, size: int
) -> None:
    """Whatever the size, the target holds exactly the new bytes (the old file replaced), mode 0600, and
    no temporary file remains beside it."""
    folder = tmp_path_factory.mktemp("aw")
    target = folder / "payload"
    target.write_bytes(b"old contents")
    data = bytes(i % 251 for i in range(size))
    atomic_write(target, data)
    assert target.read_bytes() == data
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in folder.iterdir()] == ["payload"]


def test_atomic_write_that_fails_raises_the_write_error_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A target that cannot be replaced (it is a folder) raises LocalIOError, the folder keeps only what
    was there, and no '.tmp' file is left."""
    (tmp_path / "busy").mkdir()
    with pytest.raises(LocalIOError):
        atomic_write(tmp_path / "busy", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]
