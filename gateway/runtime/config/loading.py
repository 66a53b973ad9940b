"""Finding, reading and checking the configuration file as a whole; secrets read at start-up."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.runtime.config.models import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    ApiConfig,
    FhirConfig,
    GatewayConfig,
    MappingsConfig,
    OutboxConfig,
    _raise_if,
)
from gateway.runtime.config.partners import _cross_checks, _partners
from gateway.runtime.config.reader import _Table
from gateway.runtime.config.sections import (
    _database_url,
    _folders,
    _gateway,
    _identity,
    _inbox,
    _precert,
    _retention,
    _routing,
    _timeouts,
)

# --------------------------------------------------------------------------------------------- loading


def config_path(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """The configuration file: ``--config`` if given, else ``$X12GW_CONFIG``, else ``./gateway.toml``."""
    if cli_value:
        return Path(cli_value)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    local = Path(DEFAULT_CONFIG_NAME)
    if local.is_file():
        return local
    raise ConfigError(
        f"no configuration file: pass --config, set {CONFIG_ENV} or create ./{DEFAULT_CONFIG_NAME}"
    )


def load_config(path: str | os.PathLike[str] | None = None) -> GatewayConfig:
    """Read and validate the TOML file at ``path`` (default: see ``config_path``)."""
    file = config_path(path).expanduser().resolve()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"configuration file {file} cannot be read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"configuration file {file} is not UTF-8 (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {file} is not valid TOML: {exc}") from exc
    return parse_config(data, file.parent, source=file)


def parse_config(
    data: Mapping[str, Any], base_dir: str | os.PathLike[str], *, source: Path | None = None
) -> GatewayConfig:
    """Validate ``data`` (a parsed TOML document); relative paths resolve against ``base_dir``."""
    base = Path(base_dir).expanduser().resolve()
    problems: list[str] = []
    top = _Table(data, "", problems)
    gateway_table = top.table("gateway")
    database_url = _database_url(gateway_table, base)
    settings = _gateway(gateway_table)
    identity = _identity(top.table("identity"))
    folders = _folders(top.table("folders"), base)
    if database_url is None:
        database_url = f"sqlite:///{folders.state / 'gateway.db'}"
    inbox = _inbox(top.table("inbox"))
    outbox = OutboxConfig(csv_summary=top.table("outbox").flag("csv_summary", True))
    timeouts = _timeouts(top.table("timeouts"))
    mappings = MappingsConfig(override_dir=top.table("mappings").path("override_dir", base))
    partners = _partners(top, base)
    config = GatewayConfig(
        base_dir=base,
        gateway=dataclasses.replace(settings, database_url=database_url),
        identity=identity,
        folders=folders,
        partners=partners,
        inbox=inbox,
        outbox=outbox,
        timeouts=timeouts,
        mappings=mappings,
        routing=_routing(top.table("routing"), partners),
        source=source,
        precert=_precert(top.table("precert"), base),
        retention=_retention(top.table("retention")),
        api=_api(top.table("api")),
        fhir=_fhir(top.table("fhir")),
    )
    _cross_checks(config, problems)
    _raise_if(problems, source or "the configuration")
    return config


# --------------------------------------------------------------------------------------------- runtime


def _fhir(t: _Table) -> FhirConfig:
    raw = t.data.get("payers", {})
    pairs_ok = isinstance(raw, dict) and all(isinstance(v, str) for v in raw.values())
    if not pairs_ok:
        t.problem("payers", 'must be a table of "<identifier system>|<value>" = "<payer id>"')
        return FhirConfig()
    bad = [k for k in raw if "|" not in k]
    if bad:
        t.problem("payers", 'keys are "<identifier system>|<value>" (a | between them)')
    return FhirConfig(payers=dict(raw))


def _api(t: _Table) -> ApiConfig:
    return ApiConfig(
        realtime_budget_seconds=t.number("realtime_budget_seconds", 20.0, positive=True),
        max_body_bytes=t.integer("max_body_bytes", 1_000_000, 1024),
    )
