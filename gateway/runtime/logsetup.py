"""Structured logging for the shell, with PHI and secrets removed from every event before output.

Why it is built this way:

* One pipeline: structlog events and standard-library records (paramiko, SQLAlchemy, alembic, pyx12)
  go through the same processors and one handler, so nothing reaches the output unredacted.
* Exceptions and stack traces are turned into text (``format_exc_info``) *before* redaction, so an
  exception message that quotes a name is scrubbed like any other string. Pretty tracebacks that show
  local variables are never used.
* Redaction works three ways, because no single one is enough:

  (a) by key: values under keys such as ``first_name``, ``member_id`` or ``dob`` (any nesting, any
      case, camelCase too) become ``[redacted]``;
  (b) by value: ``phi_scope([...])`` registers the concrete PHI strings of the unit of work in
      progress (a request's names, member id, birth date), in a context variable, and every string
      anywhere in the event has them replaced;
  (c) by pattern: X12 fragments quoted in text (``DMG*D8*<date>``, the names and ids of an ``NM1``,
      ``N3``/``N4`` addresses, identifying ``REF`` segments) and secrets (``register_secret`` and the
      values of environment variables named ``*_PASSWORD``, ``*_SECRET``, ``*_TOKEN``, ``*_KEY``).

* File names under keys such as ``file`` are masked to a stable keyed hash plus the extension
  (``gateway.runtime.filemask``): billing systems put patient names and member ids in file names.
* JSON lines when the output is not a terminal (log shippers), readable console lines on a terminal
  (colours unless ``NO_COLOR`` is set).
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import cached_property
from pathlib import PurePath
from typing import Any, TextIO, cast
from uuid import UUID

import structlog
from structlog.dev import ConsoleRenderer, plain_traceback
from structlog.processors import (
    NAME_TO_LEVEL,
    JSONRenderer,
    StackInfoRenderer,
    TimeStamper,
    format_exc_info,
)
from structlog.stdlib import BoundLogger, LoggerFactory, ProcessorFormatter
from structlog.typing import EventDict, Processor, WrappedLogger

from gateway.errors import ConfigError
from gateway.runtime.filemask import mask_file_name

REDACTED = "[redacted]"
MIN_VALUE_LENGTH = 3  # shorter registered values would blank out ordinary text
_MAX_DEPTH = 12

# Third-party loggers that are chatty at INFO (paramiko narrates every handshake; SQLAlchemy's INFO is
# SQL echo). They are capped at WARNING whatever the gateway's own level is.
QUIET_LOGGERS = ("paramiko", "sqlalchemy", "alembic.runtime.migration")
# paramiko.transport logs every peer that hangs up ("Socket exception: Connection reset") at ERROR from
# its own threads; the SFTP client maps real failures to TransferError, which the gateway logs itself.
SILENT_LOGGERS = ("paramiko.transport",)

# --------------------------------------------------------------------------------------------- keys

# Keys whose value is PHI wherever they appear, also as the end of a longer key (patient_member_id).
_PHI_SUFFIXES = frozenset(
    {
        "first_name",
        "last_name",
        "middle_name",
        "member_id",
        "subscriber_id",
        "birth_date",
        "birthdate",
        "dob",
        "date_of_birth",
        "ssn",
        "postal_code",
    }
)
# Keys that are PHI on their own or after a person role (patient_name), but too generic to match as
# any suffix: ``file_name``, ``partner_name`` and ``logger_name`` stay readable.
_PHI_WORDS = frozenset({"name", "address", "line1", "line2", "city", "zip", "phone"})
_ROLE_WORDS = _PHI_WORDS | {"id"}  # patient_id is PHI, a bare id (a row, a request) is not
_PERSON_ROLES = frozenset({"patient", "subscriber", "dependent", "member", "insured", "person", "contact"})
# Keys whose value is a secret, also as the end of a longer key (db_password, api_token).
_SECRET_SUFFIXES = frozenset(
    {"password", "passwd", "secret", "token", "passphrase", "key_passphrase", "private_key", "api_key"}
)
# Keys that hold a file name: shown masked (``gateway.runtime.filemask``), as inbox names may be PHI.
_FILE_NAME_KEYS = frozenset({"file", "file_name", "filename", "remote_file", "inbox_file"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_sensitive_cache: dict[str, bool] = {}


def _normalise_key(key: str) -> str:
    return _NON_WORD.sub("_", _CAMEL.sub("_", key).lower()).strip("_")


def is_sensitive_key(key: str) -> bool:
    """Whether the value stored under ``key`` is PHI or a secret (so it is replaced, not scanned)."""
    cached = _sensitive_cache.get(key)
    if cached is not None:
        return cached
    norm = _normalise_key(key)
    tokens = norm.split("_")
    suffixes = {"_".join(tokens[i:]) for i in range(len(tokens))}
    result = (
        norm in _PHI_WORDS
        or bool(suffixes & _PHI_SUFFIXES)
        or bool(suffixes & _SECRET_SUFFIXES)
        or (len(tokens) > 1 and tokens[0] in _PERSON_ROLES and "_".join(tokens[1:]) in _ROLE_WORDS)
    )
    if len(_sensitive_cache) < 4096:
        _sensitive_cache[key] = result
    return result


# --------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class _Scope:
    values: tuple[str, ...]

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        """The values' regex, compiled when an event is first redacted in the scope: a scope whose
        events are all below the log level (a real-time API call's, most days) compiles none."""
        return _alternation(self.values, re.IGNORECASE)


_scope: ContextVar[_Scope | None] = ContextVar("x12gw_phi_scope", default=None)


def _date_forms(value: date) -> list[str]:
    """The spellings of a date that may show up in text: X12, ISO, US, and a date's repr."""
    return [
        value.strftime("%Y%m%d"),
        value.isoformat(),
        value.strftime("%m/%d/%Y"),
        f"datetime.date({value.year}, {value.month}, {value.day})",
    ]


_DATE_TEXT = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


def _expand(value: str | date) -> list[str]:
    """A registered value plus its other spellings (dates are written several ways)."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return _date_forms(value)
    text = value.strip()
    match = _DATE_TEXT.match(text)
    if match:
        try:
            return [text, *_date_forms(date(int(match[1]), int(match[2]), int(match[3])))]
        except ValueError:
            pass
    return [text]


def _alternation(values: Iterable[str], flags: int = 0) -> re.Pattern[str] | None:
    """One regex matching any of ``values``; longest first so a full name beats its first part."""
    ordered = sorted(set(values), key=lambda v: (-len(v), v))
    if not ordered:
        return None
    return re.compile("|".join(re.escape(v) for v in ordered), flags)


@contextmanager
def phi_scope(values: Iterable[str | date | None]) -> Iterator[None]:
    """Redact these PHI values from every log event emitted inside the ``with`` block.

    Register the concrete values of the unit of work in progress: names, member ids, birth dates
    (given as a ``date`` or an 8-digit/ISO string; the other spellings are added). Matching ignores
    case; values shorter than 3 characters and ``None`` are ignored. Scopes nest (inner blocks add
    to the outer values) and follow ``contextvars``: a worker thread needs its own scope.
    """
    outer = _scope.get()
    collected = list(outer.values) if outer is not None else []
    for value in values:
        if value is None:
            continue
        collected.extend(v for v in _expand(value) if len(v) >= MIN_VALUE_LENGTH)
    unique = tuple(sorted(set(collected)))
    token = _scope.set(_Scope(unique))
    try:
        yield
    finally:
        _scope.reset(token)


# --------------------------------------------------------------------------------------------- secrets

_SECRET_ENV_SUFFIXES = ("_PASSWORD", "_SECRET", "_TOKEN", "_KEY")
_secrets_lock = threading.Lock()
_registered: set[str] = set()
_secret_cache: tuple[tuple[str, ...], re.Pattern[str] | None] = ((), None)


def register_secret(value: str | None) -> None:
    """Scrub ``value`` from every later log event of the process (e.g. a password read from the env)."""
    if value and len(value) >= MIN_VALUE_LENGTH:
        with _secrets_lock:
            _registered.add(value)


def _secret_pattern() -> re.Pattern[str] | None:
    """Registered secrets plus the current values of secret-named environment variables.

    The environment is read on every event (it is small) so a variable set after start-up is still
    covered; the regex is rebuilt only when the set of values changes.
    """
    global _secret_cache  # noqa: PLW0603 - a process-wide cache of one compiled pattern
    env = {
        v
        for k, v in os.environ.items()
        if k.upper().endswith(_SECRET_ENV_SUFFIXES) and len(v) >= MIN_VALUE_LENGTH
    }
    with _secrets_lock:
        wanted = tuple(sorted(env | _registered))
        if wanted != _secret_cache[0]:
            _secret_cache = (wanted, _alternation(wanted))
        return _secret_cache[1]


# --------------------------------------------------------------------------------------------- X12

_SEP = r"[^A-Za-z0-9\s]"  # whatever element separator the interchange used
_STOP = r"[^~\r\n'\"]*"  # up to the segment terminator (or the end of the quoted text)
_X12_PATTERNS = (
    # Birth date: DMG*D8*19800101 keeps the qualifier, loses the date.
    re.compile(rf"(?<![A-Za-z0-9])(DMG(?P<s>{_SEP})D8(?P=s))\d{{8}}"),
    # Person or organisation name and id: everything after NM1*IL*1*.
    re.compile(rf"(?<![A-Za-z0-9])(NM1(?P<s>{_SEP})[A-Za-z0-9]{{2,3}}(?P=s)[A-Za-z0-9](?P=s)){_STOP}"),
    # Street address and city/state/zip.
    re.compile(rf"(?<![A-Za-z0-9])(N[34](?P<s>{_SEP})){_STOP}"),
    # Identifying references: SSN (SY), member id (1W), patient account (EJ), health claim (F6), ...
    re.compile(rf"(?<![A-Za-z0-9])(REF(?P<s>{_SEP})(?:SY|1W|EJ|F6|IG|HJ|N6|Q4|6P)(?P=s)){_STOP}"),
)


# --------------------------------------------------------------------------------------------- redaction


def _as_text(value: object) -> str:
    """How an arbitrary object is shown: ``str`` for value types, ``Type: message`` for exceptions,
    ``repr`` for everything else (dataclasses show their fields, which is why scrubbing follows)."""
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, date | PurePath | Decimal | UUID | Enum):
        return str(value)
    return repr(value)


@dataclass(frozen=True)
class _Scrubber:
    phi: re.Pattern[str] | None
    secrets: re.Pattern[str] | None

    def text(self, value: str) -> str:
        if self.secrets is not None:
            value = self.secrets.sub(REDACTED, value)
        if self.phi is not None:
            value = self.phi.sub(REDACTED, value)
        for pattern in _X12_PATTERNS:
            value = pattern.sub(rf"\g<1>{REDACTED}", value)
        return value

    def value(self, value: object, depth: int = 0) -> object:
        """``value`` made safe to print: strings scrubbed, containers walked, objects turned to text."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int | float):
            as_text = str(value)
            scrubbed = self.text(as_text)
            return value if scrubbed == as_text else scrubbed
        if isinstance(value, Mapping | list | tuple | set | frozenset):
            return self._container(value, depth + 1)
        return self.text(_as_text(value))

    def _container(self, value: Mapping[Any, Any] | Iterable[object], depth: int) -> object:
        if depth > _MAX_DEPTH:
            return "[too deep]"
        if isinstance(value, Mapping):
            return self.mapping(value, depth)
        return [self.value(v, depth) for v in value]

    def mapping(self, value: Mapping[Any, Any], depth: int = 0) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, item in value.items():
            name = key if isinstance(key, str) else repr(key)
            if is_sensitive_key(name) and item is not None:
                out[self.text(name)] = REDACTED
            elif isinstance(item, str) and _normalise_key(name) in _FILE_NAME_KEYS:
                out[self.text(name)] = mask_file_name(item)
            else:
                out[self.text(name)] = self.value(item, depth)
        return out


def redact_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: remove PHI and secrets from every key and value of ``event_dict``.

    Runs after ``format_exc_info``, so exception text and tracebacks are plain strings by now.
    """
    scope = _scope.get()
    scrubber = _Scrubber(scope.pattern if scope is not None else None, _secret_pattern())
    return scrubber.mapping(event_dict)


def redact_text(text: str) -> str:
    """``text`` with the current scope's PHI, registered secrets and X12 PHI patterns removed."""
    scope = _scope.get()
    return _Scrubber(scope.pattern if scope is not None else None, _secret_pattern()).text(text)


def _finish_foreign(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Drop ProcessorFormatter's bookkeeping; redact records that did not come through structlog.

    structlog's own events were redacted in its chain already; records from the standard library
    (paramiko, pyx12, ...) are redacted here, after their exception was formatted.
    """
    from_structlog = event_dict.pop("_from_structlog", False)
    event_dict.pop("_record", None)
    return event_dict if from_structlog else redact_event(logger, method, event_dict)


def _foreign_stack(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """A stdlib record's ``stack_info`` is already text: show it under structlog's ``stack`` key."""
    stack = event_dict.pop("stack_info", None)
    if isinstance(stack, str):
        event_dict["stack"] = stack
    return event_dict


# --------------------------------------------------------------------------------------------- setup


class _SafeStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler whose failure report never prints the record (its arguments may be PHI).

    The standard ``handleError`` writes the message and its arguments to stderr, unredacted.
    """

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - the stdlib's name
        with suppress(Exception):  # nowhere left to report to
            sys.stderr.write(f"x12gw: a log record from logger {record.name!r} could not be written\n")


_handler: _SafeStreamHandler | None = None
_before: list[int] = []  # the root level before the first ``configure_logging`` (``reset_logging``)
_structlog_ready = False


def _shared_processors() -> list[Processor]:
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        TimeStamper(fmt="iso", utc=True),
    ]


def _configure_structlog() -> None:
    """Install structlog's chain (redaction included) so no event can bypass it, even before setup."""
    global _structlog_ready  # noqa: PLW0603 - process-wide logging state is inherently global
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            *_shared_processors(),
            StackInfoRenderer(),
            format_exc_info,
            redact_event,
            ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=LoggerFactory(),
        wrapper_class=BoundLogger,
        cache_logger_on_first_use=False,  # structlog.testing.capture_logs needs uncached loggers
    )
    _structlog_ready = True


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ConfigError(f"log level {level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return number


def _wants_colour(stream: TextIO) -> bool:
    return not os.environ.get("NO_COLOR") and _is_terminal(stream)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def configure_from_settings(log_format: str, log_level: str, *, json_logs: bool = False) -> None:
    """Logging as the configuration's ``[gateway] log_format``/``log_level`` say (``--json-logs``
    forces JSON): what ``run`` and ``serve`` (and each of its workers) do once the file is read."""
    as_json = True if json_logs else {"json": True, "console": False}.get(log_format)
    configure_logging(json=as_json, level=log_level)


def configure_logging(
    *, json: bool | None = None, level: str | int = "INFO", stream: TextIO | None = None
) -> None:
    """Send all logging (structlog and stdlib) to ``stream`` (default: stderr), redacted.

    ``json=None`` picks JSON lines unless ``stream`` is a terminal. Calling it again replaces the
    previous configuration (tests configure a StringIO stream this way).
    """
    global _handler  # noqa: PLW0603 - process-wide logging state is inherently global
    out = sys.stderr if stream is None else stream
    number = _level_number(level)
    as_json = not _is_terminal(out) if json is None else json
    renderer: Processor = (
        JSONRenderer(serializer=jsonlib.dumps)
        if as_json
        else ConsoleRenderer(colors=_wants_colour(out), exception_formatter=plain_traceback)
    )
    formatter = ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), _foreign_stack, format_exc_info],
        processors=[_finish_foreign, renderer],
    )
    handler = _SafeStreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    else:  # the first configuration since start or ``reset_logging``: its level to put back there
        _before.append(root.level)
    root.addHandler(handler)
    root.setLevel(number)
    _handler = handler
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(number, logging.WARNING))
    for name in SILENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.captureWarnings(True)
    _configure_structlog()


def reset_logging() -> None:
    """Remove the handler ``configure_logging`` installed and put the root logger's level back as it
    was before (for tests: a test configuring WARNING must not silence a later test's INFO lines);
    redaction stays in place."""
    global _handler  # noqa: PLW0603 - process-wide logging state is inherently global
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None
    if _before:
        logging.getLogger().setLevel(_before.pop())
    logging.captureWarnings(False)


def get_logger(name: str | None = None) -> BoundLogger:
    """A structlog logger named ``name`` (use ``__name__``); safe to call before ``configure_logging``.
    A named one checks the level first (``LevelChecked``)."""
    if not _structlog_ready:
        _configure_structlog()
    if name is None:  # named after its caller's module, found per event: structlog's own way
        logger: BoundLogger = structlog.stdlib.get_logger()
        return logger
    return cast(BoundLogger, LevelChecked(name))


def dropped_by_level(std: logging.Logger, method: str) -> bool:
    """Whether an event of ``method``'s level sent to the stdlib logger ``std`` would be dropped by
    the configured chain's first processor, ``filter_by_level``, before anything is written: so a
    caller can skip building it (never so under ``capture_logs``, whose chain keeps every event)."""
    config = structlog.get_config()
    processors = config["processors"]
    return (
        bool(processors)
        and processors[0] is structlog.stdlib.filter_by_level
        and type(config["logger_factory"]) is LoggerFactory
        and (std.disabled or NAME_TO_LEVEL[method] < std.getEffectiveLevel())
    )


class LevelChecked:
    """structlog's lazy logger for ``name`` that drops an event below the level before structlog
    builds anything for it.

    Why: the gateway's loggers are not cached (``structlog.testing.capture_logs`` needs that), so
    each event binds a new logger (the logger factory, ``logging.getLogger``, a context copy) only for
    the chain's first processor, ``filter_by_level``, to drop it: a real-time call's "accepted" and
    "core exchange" lines cost serve about 4% of its CPU at the usual WARNING level. Here the same
    test ``filter_by_level`` makes (the stdlib logger named ``name``: not disabled, level at least its
    effective level) is made first, while the configured chain starts with ``filter_by_level`` and its
    factory is the stdlib's (otherwise, say under ``capture_logs``, every event goes to structlog as
    before); an event it would keep goes to structlog unchanged, which makes that test again."""

    __slots__ = ("_lazy", "_std")

    def __init__(self, name: str) -> None:
        self._lazy: Any = structlog.stdlib.get_logger(name)
        self._std = logging.getLogger(name)  # what ``LoggerFactory`` hands ``filter_by_level``

    def _dropped(self, method: str) -> bool:
        return dropped_by_level(self._std, method)

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return None if self._dropped("debug") else self._lazy.debug(event, *args, **kw)

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return None if self._dropped("info") else self._lazy.info(event, *args, **kw)

    def warning(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return None if self._dropped("warning") else self._lazy.warning(event, *args, **kw)

    def error(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return None if self._dropped("error") else self._lazy.error(event, *args, **kw)

    def critical(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return None if self._dropped("critical") else self._lazy.critical(event, *args, **kw)

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return None if self._dropped("exception") else self._lazy.exception(event, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lazy, name)  # bind, new, log, ...: structlog's own
