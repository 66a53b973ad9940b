"""Masked file names: inbox names are PHI (billing systems name files ``<LASTNAME>_<MEMBERID>.json``).

Logs and listings show ``f-<10 hex>.<ext>``: a keyed hash (stable, so a log line, a listing and an
audited reveal can be matched up) plus the extension, which helps operators and is not PHI. The key is
the member-hash key once the gateway or an operator command has loaded it; before that a fixed label
is used (the mask is then stable but guessable, which only matters for lines logged before start-up).
"""

from __future__ import annotations

import hashlib
import hmac
import re

_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_MASKED = re.compile(r"^f-[0-9a-f]{10}(\.[A-Za-z0-9]{1,8})?$")
_key: list[bytes] = [b"x12gw file name mask"]


def set_mask_key(key: bytes) -> None:
    """Use ``key`` (the member-hash key) for every mask from now on."""
    _key[0] = b"x12gw file name mask:" + key


def is_masked(name: str) -> bool:
    return bool(_MASKED.match(name))


def mask_file_name(name: str) -> str:
    """``f-<hash>.<ext>`` for ``name`` (already-masked names are returned as they are)."""
    if is_masked(name):
        return name
    dot = name.rfind(".")
    ext = name[dot:] if dot > 0 and _EXTENSION.match(name[dot:]) else ""
    digest = hmac.new(_key[0], name.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
    return f"f-{digest[:10]}{ext}"
