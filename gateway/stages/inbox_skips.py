"""Say why an inbox entry is not taken, instead of ignoring it silently forever.

The intake never takes hidden files (writers use a leading dot while a file is incomplete), symbolic
links (following one would read whatever it points to, outside the inbox), files with more than one
hard link (the same, by another road), nor FIFOs, sockets, devices or folders. A billing
system that writes ``.export.json`` and never renames it, or an administrator who links a file in,
used to see nothing happen and no reason anywhere. This stage logs a warning with the reason, once
per file name (again if the name goes away and comes back), for every such entry that has been
there longer than ``inbox.stable_seconds`` (a writer may still be busy with it before that).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gateway.runtime.context import Context
from gateway.runtime.fsutil import HARD_LINK, NOT_REGULAR, SYMLINK, io_errors, kind_reason
from gateway.stages.base import Cycle

HIDDEN = "hidden file name (leading dot): never taken; rename it without the dot to have it processed"
__all__ = ["HARD_LINK", "HIDDEN", "NOT_REGULAR", "SYMLINK", "NoteSkippedInboxFiles", "skipped"]


def skipped(folder: Path, *, now: float, settle_seconds: float) -> dict[str, str]:
    """Inbox entries the intake will never take, name -> reason (settled ones only)."""
    out: dict[str, str] = {}
    with io_errors("list", folder), os.scandir(folder) as entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            settled = now - st.st_mtime >= settle_seconds
            if (why := kind_reason(st)) is not None and (why != HARD_LINK or settled):
                out[entry.name] = why
            elif why is None and entry.name.startswith(".") and settled:
                out[entry.name] = HIDDEN
    return out


@dataclass(slots=True)
class NoteSkippedInboxFiles:
    """Before intake: a warning per inbox entry the intake will never take, once per name."""

    name: str = "inbox skips"
    noted: set[str] = field(default_factory=set)

    def __call__(self, ctx: Context, _cycle: Cycle, /) -> None:
        folder = ctx.config.folders.inbox
        if not folder.is_dir():
            return
        found = skipped(folder, now=ctx.clock().timestamp(), settle_seconds=ctx.config.inbox.stable_seconds)
        for name in sorted(found.keys() - self.noted):
            ctx.log.warning("inbox file not taken", file=name, reason=found[name])
        self.noted.intersection_update(found)  # a name that went away is noted again if it returns
        self.noted.update(found)
