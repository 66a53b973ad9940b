"""Logging: PHI and secrets never reach the output, whatever path they take; JSON and console formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import date

import pytest
import structlog

from gateway.errors import ConfigError
from gateway.runtime.filemask import mask_file_name
from gateway.runtime.logsetup import (
    REDACTED,
    configure_from_settings,
    configure_logging,
    get_logger,
    is_sensitive_key,
    phi_scope,
    redact_text,
    register_secret,
    reset_logging,
)
from transactions.models import Person

FIRST, LAST, MIDDLE = "Zebediah", "Quillfeather", "Orlando"
MEMBER = "W987654321"
BIRTH = date(1972, 3, 15)
ADDRESS, CITY = "42 Wallaby Way", "Springfield"
CANARIES = (FIRST, LAST, MIDDLE, MEMBER, "19720315", "1972-03-15", "03/15/1972", ADDRESS, CITY)
SCOPE = (FIRST, LAST, MIDDLE, MEMBER, BIRTH, ADDRESS, CITY)


def assert_clean(text: str) -> None:
    for canary in CANARIES:
        assert canary.lower() not in text.lower(), canary


def events(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=out)
    yield out
    reset_logging()
    structlog.contextvars.clear_contextvars()


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# --------------------------------------------------------------------------------------------- PHI


def test_phi_in_messages_is_redacted_inside_a_scope(capture: io.StringIO) -> None:
    """Registered names, member id and birth date (any spelling, any case) vanish from messages."""
    log = get_logger("test.messages")
    with phi_scope(SCOPE):
        log.info(f"eligibility for {FIRST} {MIDDLE} {LAST.upper()} member {MEMBER} born 19720315")
        log.info(f"born {BIRTH.isoformat()} or 03/15/1972, lives at {ADDRESS}, {CITY}")
    assert_clean(capture.getvalue())
    assert capture.getvalue().count(REDACTED) >= 8


def test_phi_keys_are_redacted_at_any_depth_without_a_scope(capture: io.StringIO) -> None:
    """Values under PHI and secret keys are replaced even when nobody registered them."""
    get_logger("test.keys").info(
        "request received",
        first_name=FIRST,
        lastName=LAST,
        MIDDLE_NAME=MIDDLE,
        member_id=MEMBER,
        dob="19720315",
        patient={"name": f"{FIRST} {LAST}", "address": {"line1": ADDRESS, "city": CITY, "zip": "12345"}},
        subscribers=[{"subscriber_id": MEMBER, "birthDate": "1972-03-15"}, ({"ssn": "123456789"},)],
        sftp={"password": "pw-canary", "api_token": "tok-canary", "key_passphrase": "pp-canary"},
        partner="acme",
        file_name="request-001.json",
        control=42,
    )
    text = capture.getvalue()
    assert_clean(text)
    for secret in ("pw-canary", "tok-canary", "pp-canary", "123456789"):
        assert secret not in text
    (event,) = events(text)
    assert (event["partner"], event["file_name"], event["control"]) == (
        "acme",
        mask_file_name("request-001.json"),
        42,
    )
    assert event["first_name"] == REDACTED


def test_nested_values_and_objects_are_scrubbed_inside_a_scope(capture: io.StringIO) -> None:
    """PHI inside nested strings, tuples, numbers and object reprs (dataclasses, dates) is replaced."""
    person = Person(last_name=LAST, first_name=FIRST, member_id=MEMBER, birth_date=BIRTH)
    with phi_scope([person.first_name, person.last_name, person.member_id, person.birth_date]):
        get_logger("test.nested").info(
            "checking",
            detail={"note": f"called {LAST}", "tries": [f"{FIRST}!", (MEMBER,)]},
            person=person,
            when=BIRTH,
        )
    assert_clean(capture.getvalue())
    assert "datetime.date(1972, 3, 15)" not in capture.getvalue()


def test_numbers_that_are_phi_are_redacted(capture: io.StringIO) -> None:
    """A registered member id logged as an int is caught too; other numbers stay numbers."""
    with phi_scope(["123456789"]):
        get_logger("test.numbers").info("ids", member=123456789, count=3)
    (event,) = events(capture.getvalue())
    assert event["member"] == REDACTED
    assert event["count"] == 3


def _fail_lookup() -> None:
    try:
        raise KeyError(MEMBER)
    except KeyError as exc:
        raise ValueError(f"no coverage for {FIRST} {LAST} ({MEMBER}, born {BIRTH.isoformat()})") from exc


def test_exception_text_and_traceback_are_redacted(capture: io.StringIO) -> None:
    """logger.exception output keeps the traceback but loses the PHI in chained exception messages."""
    log = get_logger("test.exception")
    with phi_scope(SCOPE):
        try:
            _fail_lookup()
        except ValueError as exc:
            log.exception("lookup failed")
            log.error("lookup failed again", error=exc)
    text = capture.getvalue()
    assert_clean(text)
    first, second = events(text)
    assert "Traceback (most recent call last)" in str(first["exception"])
    assert "ValueError: no coverage for [redacted] [redacted]" in str(first["exception"])
    assert "KeyError" in str(first["exception"])
    redacted = "[redacted] [redacted] ([redacted], born [redacted])"
    assert second["error"] == f"ValueError: no coverage for {redacted}"


def test_stdlib_records_go_through_the_same_redaction(capture: io.StringIO) -> None:
    """Records from plain logging (pyx12, SQLAlchemy, ...) are redacted, exception text included."""
    pyx12_log = logging.getLogger("pyx12.error_handler")
    pyx12_log.error("Segment NM1*IL*1*%s*%s****MI*%s~ failed", LAST, FIRST, MEMBER)
    with phi_scope(SCOPE):
        try:
            _fail_lookup()
        except ValueError:
            logging.getLogger("alembic.runtime").exception("migration step saw %s", FIRST)
    text = capture.getvalue()
    assert_clean(text)
    first, second = events(text)
    assert first["event"] == "Segment NM1*IL*1*[redacted]~ failed"
    assert first["logger"] == "pyx12.error_handler"
    assert "Traceback" in str(second["exception"])


def test_bound_context_variables_are_redacted(capture: io.StringIO) -> None:
    """Values bound with structlog.contextvars pass the same key rules as event keys."""
    structlog.contextvars.bind_contextvars(member_id=MEMBER, request_id="req-7")
    get_logger("test.context").info("working")
    (event,) = events(capture.getvalue())
    assert (event["member_id"], event["request_id"]) == (REDACTED, "req-7")


def test_x12_fragments_quoted_in_text_are_redacted() -> None:
    """Birth dates in DMG, names/ids in NM1, N3/N4 addresses and identifying REFs are cut from text."""
    text = (
        "ST*270*0001~NM1*IL*1*DOE*JOHN****MI*W123~DMG*D8*19800101*M~N3*1 MAIN ST~N4*TOWN*NY*10001~"
        "REF*SY*123456789~REF*EO*ELIG~"
    )
    assert redact_text(text) == (
        "ST*270*0001~NM1*IL*1*[redacted]~DMG*D8*[redacted]*M~N3*[redacted]~N4*[redacted]~"
        "REF*SY*[redacted]~REF*EO*ELIG~"
    )
    assert redact_text("seg 'NM1|QC|1|ROE|JANE' bad") == "seg 'NM1|QC|1|[redacted]' bad"
    assert redact_text("plain text about NM1 segments") == "plain text about NM1 segments"


def test_scope_covers_only_its_block_and_ignores_short_values(capture: io.StringIO) -> None:
    """Outside a scope values are logged as usual; scopes nest; values under 3 characters are ignored."""
    log = get_logger("test.scope")
    with phi_scope([FIRST, "Al", None]):
        with phi_scope([LAST]):
            log.info(f"{FIRST} {LAST} Al")
        log.info(f"{FIRST} {LAST}")
    log.info(f"{FIRST}")
    inner, outer, after = (e["event"] for e in events(capture.getvalue()))
    assert inner == "[redacted] [redacted] Al"
    assert outer == f"[redacted] {LAST}"
    assert after == FIRST


def test_key_rules_spare_operational_names() -> None:
    """Role-prefixed and camelCase PHI keys match; file, partner and logger names do not."""
    sensitive = ("name", "patient_name", "patient_id", "subscriberDob", "Member-ID", "patient_member_id")
    for key in (*sensitive, "db_password", "sftpPassword"):
        assert is_sensitive_key(key), key
    for key in ("id", "file_name", "partner_name", "logger", "event", "host_key", "member_id_hash", "ctl"):
        assert not is_sensitive_key(key), key


# --------------------------------------------------------------------------------------------- secrets


def test_environment_secrets_and_registered_secrets_are_scrubbed(
    capture: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values of *_PASSWORD/*_SECRET/*_TOKEN/*_KEY variables and register_secret values never appear."""
    monkeypatch.setenv("PARTNER_SFTP_PASSWORD", "env-pw-canary")
    monkeypatch.setenv("Some_Api_Token", "env-token-canary")
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", "env-hash-key-canary")
    monkeypatch.setenv("HARMLESS_SETTING", "visible-value")
    register_secret("registered-canary")
    get_logger("test.secrets").warning(
        "auth env-pw-canary env-token-canary env-hash-key-canary registered-canary visible-value",
        extra={"note": "registered-canary"},
    )
    text = capture.getvalue()
    for secret in ("env-pw-canary", "env-token-canary", "env-hash-key-canary", "registered-canary"):
        assert secret not in text
    assert "visible-value" in text


# --------------------------------------------------------------------------------------------- output


def test_json_output_is_one_object_per_line(capture: io.StringIO) -> None:
    """Every event, even with a multi-line message or a traceback, is exactly one JSON line."""
    log = get_logger("test.json")
    log.info("first", n=1)
    log.warning("two\nlines")
    try:
        _fail_lookup()
    except ValueError:
        log.exception("third")
    logging.getLogger("sqlalchemy.pool").error("fourth")
    parsed = events(capture.getvalue())
    assert [e["event"] for e in parsed] == ["first", "two\nlines", "third", "fourth"]
    assert [e["level"] for e in parsed] == ["info", "warning", "error", "error"]
    assert all({"timestamp", "logger"} <= set(e) for e in parsed)


def test_console_output_is_readable_and_redacted() -> None:
    """Console mode writes plain lines (no colour on a non-terminal) with the traceback below."""
    out = io.StringIO()
    configure_logging(json=False, stream=out)
    try:
        log = get_logger("test.console")
        with phi_scope(SCOPE):
            log.info("console event", partner="acme", member_id=MEMBER)
            try:
                _fail_lookup()
            except ValueError:
                log.exception("console failure")
    finally:
        reset_logging()
    text = out.getvalue()
    assert_clean(text)
    assert "console event" in text
    assert "partner=acme" in text
    assert "Traceback (most recent call last)" in text
    assert "\x1b[" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_terminal_gets_console_output_with_colour_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """json=None picks console output on a terminal; colours are on, and off when NO_COLOR is set."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = FakeTerminal()
    configure_logging(stream=coloured)
    get_logger("test.tty").info("on a terminal")
    monkeypatch.setenv("NO_COLOR", "1")
    plain = FakeTerminal()
    configure_logging(stream=plain)
    get_logger("test.tty").info("on a terminal")
    reset_logging()
    assert "\x1b[" in coloured.getvalue()
    assert "\x1b[" not in plain.getvalue()
    assert "on a terminal" in plain.getvalue()


def test_non_terminal_gets_json_by_default() -> None:
    """json=None writes JSON lines when the stream is not a terminal (a file, a pipe, a log shipper)."""
    out = io.StringIO()
    configure_logging(stream=out)
    get_logger("test.auto").info("auto")
    reset_logging()
    assert events(out.getvalue())[0]["event"] == "auto"


def test_levels_and_paramiko_cap() -> None:
    """The level filters both kinds of logger; paramiko stays at WARNING even when DEBUG is asked for,
    and paramiko.transport's hang-up noise (logged at ERROR from its threads) is silenced."""
    out = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=out)
    logging.getLogger("paramiko.sftp").info("handshake chatter")
    logging.getLogger("paramiko.sftp").warning("paramiko warning")
    logging.getLogger("paramiko.transport").error("Socket exception: Connection reset by peer (104)")
    get_logger("test.level").debug("debug kept")
    configure_logging(json=True, level="warning", stream=out)
    get_logger("test.level").info("info dropped")
    logging.getLogger("alembic").info("alembic info dropped")
    reset_logging()
    assert [e["event"] for e in events(out.getvalue())] == ["paramiko warning", "debug kept"]


def test_settings_level_and_format_apply_to_run_and_serve(capsys: pytest.CaptureFixture[str]) -> None:
    """``[gateway] log_level``/``log_format`` decide what ``run`` and ``serve`` print (serve used to
    log at INFO whatever the file said); ``--json-logs`` forces JSON."""
    configure_from_settings("json", "WARNING")
    get_logger("test.settings").info("info dropped")
    get_logger("test.settings").warning("warning kept")
    configure_from_settings("console", "INFO", json_logs=True)
    get_logger("test.settings").info("json forced")
    reset_logging()
    assert [e["event"] for e in events(capsys.readouterr().err)] == ["warning kept", "json forced"]


def test_reconfiguring_replaces_the_handler() -> None:
    """Calling configure_logging again does not duplicate output."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging(json=True, stream=first)
    configure_logging(json=True, stream=second)
    get_logger("test.reconfigure").warning("once")
    reset_logging()
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_unknown_level_is_a_config_error() -> None:
    """A misspelt level is reported, not silently replaced."""
    with pytest.raises(ConfigError, match="log level 'LOUD'"):
        configure_logging(level="LOUD", stream=io.StringIO())


def test_broken_record_does_not_print_its_arguments(
    capture: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record whose arguments do not fit its format is reported without echoing the arguments."""
    # pytest's own capture handler re-raises such errors, so send the record to our handler alone.
    ours = next(h for h in logging.getLogger().handlers if getattr(h, "stream", None) is capture)
    broken = logging.getLogger("test.broken")
    broken.propagate = False
    broken.addHandler(ours)
    try:
        broken.error("member %d", MEMBER)
    finally:
        broken.removeHandler(ours)
        broken.propagate = True
    err = capsys.readouterr().err
    assert MEMBER not in err
    assert MEMBER not in capture.getvalue()
    assert "could not be written" in err
