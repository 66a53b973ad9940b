"""A ``transport = "core"`` partner: its X12 identity plus the ``[partners.core]`` table (CAQH CORE)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlsplit

from gateway.runtime.config.models import _MISSING, CoreSettings, PartnerConfig
from gateway.runtime.config.reader import _Table
from gateway.runtime.config.sections import _isa_id, _qualifier

# keys of an SFTP partner that mean nothing for a CORE one (reported, so a half-converted entry shows)
_SFTP_ONLY = (
    "send_acks",
    "host",
    "port",
    "username",
    "key_file",
    "key_passphrase_env",
    "password_env",
    "host_keys",
    "known_hosts_file",
    "upload_dir",
    "download_dir",
    "archive_dir",
    "after_download",
)


def core_partner(
    t: _Table, base: Path, name: str, *, payers: tuple[str, ...], leniency: tuple[str, ...]
) -> PartnerConfig:
    """The partner with its CORE settings; SFTP keys are refused, acknowledgments are not sent (the
    HTTP answer is the acknowledgment in real time)."""
    for key in _SFTP_ONLY:
        if key in t.data:
            t.problem(key, 'applies to SFTP partners only (this one has transport = "core")')
    isa_id = t.text("isa_id", required=True)
    if "isa_id" in t.data:
        _isa_id(t, "isa_id", isa_id)
    gs_id = t.text("gs_id") or isa_id
    if isa_id:
        _isa_id(t, "gs_id", gs_id, low=2)
    core = _core(_Table(t.data.get("core", _MISSING), t.key("core"), t.problems, "partners.core"), base, t)
    return _build(t, name, isa_id, gs_id, core, payers, leniency)


def _build(  # noqa: PLR0917 - the parts read above
    t: _Table,
    name: str,
    isa_id: str,
    gs_id: str,
    core: CoreSettings,
    payers: tuple[str, ...],
    leniency: tuple[str, ...],
) -> PartnerConfig:
    return PartnerConfig(
        name=name,
        host="",
        username="",
        isa_id=isa_id,
        upload_dir="",
        download_dir="",
        transport="core",
        core=core,
        poll_seconds=t.number("poll_seconds", 30.0, positive=True),
        timeout_seconds=core.timeout_seconds,
        retry_attempts=t.integer("retry_attempts", 5, 1, 100),
        pause_after_failures=t.integer("pause_after_failures", 5, 1),
        pause_minutes=t.number("pause_minutes", 15.0, positive=False),
        # real time sends each request alone; batch mode fills interchanges like SFTP
        max_transactions_per_file=(
            1 if core.mode == "realtime" else t.integer("max_transactions_per_file", 100, 1, 10000)
        ),
        send_acks=False,  # the HTTP answer is the acknowledgment; no 999 is POSTed back
        isa_qualifier=_qualifier(t, "isa_qualifier"),
        gs_id=gs_id,
        payers=payers,
        leniency=leniency,
    )


def _core(c: _Table, base: Path, partner: _Table) -> CoreSettings:
    if "core" not in partner.data:
        partner.problem("core", 'a [partners.core] table is required when transport = "core"')
    url = c.text("url", required=True)
    if "url" in c.data:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            c.problem("url", "must be an https:// URL (CORE connectivity runs over TLS only)")
    ca_file = c.path("ca_file", base)
    if ca_file is None:
        c.problem(
            "ca_file", "is required: the partner's CA or server certificate is pinned, never the system store"
        )
    auth = cast(Literal["basic", "mtls"], c.choice("auth", "basic", ("basic", "mtls")))
    username = c.optional_text("username")
    password_env = c.env_name("password_env")
    password_file = c.path("password_file", base)
    client_cert, client_key = c.path("client_cert", base), c.path("client_key", base)
    if auth == "basic":
        if username is None:
            c.problem("username", 'is required when auth = "basic"')
        if (password_env is None) == (password_file is None):
            c.problem("password_env", 'give password_env or password_file (one of them) when auth = "basic"')
    elif client_cert is None:
        c.problem("client_cert", 'is required when auth = "mtls" (PEM; client_key if the key is separate)')
    timeout = c.number("timeout_seconds", 60.0, positive=True)
    retry = c.number("retry_seconds", 90.0, positive=True)
    return CoreSettings(
        url=url,
        ca_file=ca_file or Path(),
        envelope=cast(Literal["mime", "soap"], c.choice("envelope", "mime", ("mime", "soap"))),
        mode=cast(Literal["realtime", "batch"], c.choice("mode", "realtime", ("realtime", "batch"))),
        sender_id=c.text("sender_id", required=True),
        receiver_id=c.text("receiver_id", required=True),
        auth=auth,
        username=username,
        password_env=password_env,
        password_file=password_file,
        client_cert=client_cert,
        client_key=client_key,
        timeout_seconds=timeout,
        retry_seconds=retry,
    )
