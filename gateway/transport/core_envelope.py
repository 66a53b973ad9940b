"""CAQH CORE connectivity envelopes (rule vC2.2.0): HTTP MIME multipart and SOAP 1.2, both ways.

An envelope carries one X12 payload plus metadata: PayloadType (what the payload is, per
transaction and implementation guide), ProcessingMode (RealTime or Batch), PayloadID (a UUID, unique
per message, never carried into the X12), TimeStamp, SenderID, ReceiverID, CORERuleVersion, Checksum
(SHA-1 of the payload, hex) and, in responses, ErrorCode and ErrorMessage. Building and parsing are
pure (bytes in, bytes out); the HTTP exchange is ``gateway.transport.core_client``, the payer side in
``payersim.core_server`` uses the same functions. A message that cannot be read raises
``EnvelopeError`` naming the field, never the payload.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from typing import Literal
from xml.etree import ElementTree
from xml.etree.ElementTree import (
    Element,
    ParseError,
    SubElement,
    fromstring,
    tostring,
)

from gateway.runtime.randpool import POOL
from transactions.errors import X12GatewayError

EnvelopeStyle = Literal["mime", "soap"]
CORE_RULE_VERSION = "2.2.0"
SOAP_NS = "http://www.w3.org/2003/05/soap-envelope"
CORE_NS = "http://www.caqh.org/SOAP/WSDL/CORERule2.2.0.xsd"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
_WSS_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_TEXT = _WSS_PROFILE + "#PasswordText"
SUCCESS = "Success"
MAX_FIELD = 512  # metadata values are short; anything longer is a malformed envelope

# PayloadType strings of the CORE payload type table, per transaction and implementation guide.
PAYLOAD_TYPES = {
    "270": "X12_270_Request_005010X279A1",
    "271": "X12_271_Response_005010X279A1",
    "278": "X12_278_Request_005010X217E1_2",
    "278resp": "X12_278_Response_005010X217E1_2",
    "999": "X12_999_Response_005010X231A1",
    "TA1": "X12_TA1_Response_00501X231A1",
}
# Batch mode: what a submitter asks for when picking up results, and the receipt of a submission.
BATCH_RESULTS_REQUEST = {
    "270": "X12_005010_Request_Batch_Results_271",
    "278": "X12_005010_Request_Batch_Results_278",
}
BATCH_RECEIPT = "X12_BatchReceiptConfirmation"
RESPONSE_TYPES = frozenset({PAYLOAD_TYPES[k] for k in ("271", "278resp", "999", "TA1")})
ELEMENTS = {
    "realtime_request": "COREEnvelopeRealTimeRequest",
    "realtime_response": "COREEnvelopeRealTimeResponse",
    "batch_submission": "COREEnvelopeBatchSubmission",
    "batch_submission_response": "COREEnvelopeBatchSubmissionResponse",
    "batch_results_request": "COREEnvelopeBatchResultsRetrievalRequest",
    "batch_results_response": "COREEnvelopeBatchResultsRetrievalResponse",
    "batch_ack": "COREEnvelopeBatchResultsAckSubmission",
    "batch_ack_response": "COREEnvelopeBatchResultsAckSubmissionResponse",
}
# Acknowledging picked-up batch results by their PayloadID, so the partner may delete them.
BATCH_RESULTS_ACK = "X12_BatchResultsAck"
_FIELDS = (
    "PayloadType",
    "ProcessingMode",
    "PayloadID",
    "PayloadLength",
    "TimeStamp",
    "SenderID",
    "ReceiverID",
    "CORERuleVersion",
    "Checksum",
    "ErrorCode",
    "ErrorMessage",
)
_TOKEN = re.compile(r"^[\x21-\x7e][\x20-\x7e]*$")
# The CORE WSDL's schema spells the SOAP element CheckSum; the MIME field is Checksum. Partners differ
# in case, so names and known PayloadType strings are read case-insensitively (lenient in what we read,
# exact in what we write).
_SOAP_NAMES = {"Checksum": "CheckSum"}
_CANONICAL = {name.lower(): name for name in (*_FIELDS, "UserName", "Password", "Payload")}
_KNOWN_TYPES = {
    t.lower(): t
    for t in (*PAYLOAD_TYPES.values(), *BATCH_RESULTS_REQUEST.values(), BATCH_RECEIPT, BATCH_RESULTS_ACK)
}


class EnvelopeError(X12GatewayError):
    """A CORE envelope that cannot be read or does not add up (names the field, never data)."""


@dataclass(frozen=True)
class CoreMessage:
    """One CORE envelope: metadata and the X12 payload (empty for errors and pick-up requests)."""

    payload_type: str
    processing_mode: str
    payload_id: str
    timestamp: str
    sender_id: str
    receiver_id: str
    payload: bytes = b""
    core_rule_version: str = CORE_RULE_VERSION
    checksum: str = ""
    error_code: str | None = None
    error_message: str | None = None
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # the payload and the password never reach a log or a traceback
        return (
            f"CoreMessage(payload_type={self.payload_type!r}, processing_mode={self.processing_mode!r}, "
            f"payload_id={self.payload_id!r}, error_code={self.error_code!r}, size={len(self.payload)})"
        )

    @property
    def ok(self) -> bool:
        return self.error_code in (None, "", SUCCESS)


def checksum(payload: bytes) -> str:
    """The envelope's Checksum: SHA-1 of the payload bytes, lower-case hex."""
    return hashlib.sha1(payload, usedforsecurity=False).hexdigest()


def new_payload_id() -> str:
    """A fresh PayloadID (UUID version 4 text)."""
    raw = bytearray(POOL.take(16))  # as secrets.token_bytes, a block read at a time (``randpool``)
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def timestamp(when: datetime) -> str:
    """The envelope's TimeStamp (XML dateTime with offset, seconds precision)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sealed(message: CoreMessage) -> CoreMessage:
    """``message`` with its Checksum computed from its payload (left empty when there is none)."""
    return replace(message, checksum=checksum(message.payload) if message.payload else "")


def verify_checksum(message: CoreMessage) -> None:
    """EnvelopeError unless the Checksum matches the payload (a message without payload has none)."""
    if not message.payload:
        return
    if not message.checksum:
        raise EnvelopeError("CORE envelope: Checksum is missing")
    if message.checksum.strip().lower() != checksum(message.payload):
        raise EnvelopeError("CORE envelope: Checksum does not match the payload (SHA-1)")


# --------------------------------------------------------------------------------------------- MIME


def _fields(message: CoreMessage) -> list[tuple[str, str]]:
    pairs = [
        ("PayloadType", message.payload_type),
        ("ProcessingMode", message.processing_mode),
        ("PayloadID", message.payload_id),
        ("PayloadLength", str(len(message.payload))),
        ("TimeStamp", message.timestamp),
        ("UserName", message.username),
        ("Password", message.password),
        ("SenderID", message.sender_id),
        ("ReceiverID", message.receiver_id),
        ("CORERuleVersion", message.core_rule_version),
        ("Checksum", message.checksum),
        ("ErrorCode", message.error_code),
        ("ErrorMessage", message.error_message),
    ]
    return [(k, v) for k, v in pairs if v is not None and (v != "" or (k == "Checksum" and message.payload))]


def build_mime(message: CoreMessage, boundary: str | None = None) -> tuple[bytes, str]:
    """The HTTP body and Content-Type of ``message`` as multipart/form-data (CORE's MIME style);
    ``boundary``: a fresh random one unless given (tests).

    The metadata parts are one text encoded once and the payload is copied once, into the body
    (a ``bytearray`` grown part by part copied the payload twice and encoded each part apart):
    the same bytes (``tests/test_core_mime_build.py``)."""
    boundary = boundary or f"core-{POOL.hex(16)}"
    opening = f'--{boundary}\r\nContent-Disposition: form-data; name="'
    head = "".join([f'{opening}{name}"\r\n\r\n{value}\r\n' for name, value in _fields(message)])
    if message.payload:
        payload_head = f'{head}{opening}Payload"\r\nContent-Type: application/edi-x12\r\n\r\n'
        parts = [payload_head.encode(), message.payload, f"\r\n--{boundary}--\r\n".encode()]
    else:
        parts = [f"{head}--{boundary}--\r\n".encode()]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# the plain shape ``build_mime`` writes (and CORE servers send): a token boundary, parts with one
# form-data name and at most one simple Content-Type, CRLF line ends, no preamble or epilogue
_PLAIN_TYPE = re.compile(r"multipart/form-data; boundary=([A-Za-z0-9_.-]{1,70})")
_PLAIN_NAME = re.compile(rb'Content-Disposition: form-data; name="([A-Za-z][A-Za-z0-9]{0,63})"')
_PLAIN_PART_TYPE = re.compile(rb"Content-Type: (?!multipart/|message/)[a-z]{1,20}/[a-z0-9.+-]{1,60}")


def parse_mime(body: bytes, content_type: str) -> CoreMessage:
    """Read a multipart/form-data CORE envelope; EnvelopeError when it is not one.

    An envelope of the plain shape is split directly (the e-mail parser costs a real-time call more
    than the rest of reading its answer); any other goes through the e-mail parser
    (:func:`parse_mime_email`, the reference), which reads the plain shape identically."""
    plain = _plain_parts(body, content_type)
    if plain is None:
        return parse_mime_email(body, content_type)
    return _from_values({k: v for k, v in plain.items() if k != "Payload"}, plain.get("Payload", b""))


def _plain_parts(body: bytes, content_type: str) -> dict[str, bytes] | None:
    """The form-data values of an envelope of the plain shape, or None when it is not one (then
    only the e-mail parser decides what it holds)."""
    found = _PLAIN_TYPE.fullmatch(content_type)
    if found is None:
        return None
    delimiter = b"--" + found.group(1).encode("ascii")
    opening, closing = delimiter + b"\r\n", b"\r\n" + delimiter + b"--\r\n"
    if not body.startswith(opening) or not body.endswith(closing) or len(body) < len(opening) + len(closing):
        return None
    parts = body[len(opening) : len(body) - len(closing)].split(b"\r\n" + delimiter + b"\r\n")
    if body.count(delimiter) != len(parts) + 1:  # the boundary nowhere else, not even in a payload
        return None
    values: dict[str, bytes] = {}
    for part in parts:
        head, blank, data = part.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if not blank or not 1 <= len(lines) <= 2:
            return None
        named = _PLAIN_NAME.fullmatch(lines[0])
        if named is None or (len(lines) == 2 and _PLAIN_PART_TYPE.fullmatch(lines[1]) is None):
            return None
        values[named.group(1).decode("ascii")] = data
    return values


def parse_mime_email(body: bytes, content_type: str) -> CoreMessage:
    """``parse_mime`` by the e-mail parser: any multipart/form-data the standard allows."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise EnvelopeError("CORE envelope: expected multipart/form-data with a boundary")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    # the compat32 policy: the modern one builds header objects the envelope never needs (3x slower)
    msg = BytesParser(policy=compat32).parsebytes(head + body)
    parts = msg.get_payload() if msg.is_multipart() else None
    if not parts:
        raise EnvelopeError("CORE envelope: the multipart body has no parts")
    values: dict[str, bytes] = {}
    for part in parts:
        if not isinstance(part, Message):
            raise EnvelopeError("CORE envelope: a part has no form-data name")
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(data, bytes):
            raise EnvelopeError("CORE envelope: a part has no form-data name")
        values[name] = data
    return _from_values({k: v for k, v in values.items() if k != "Payload"}, values.get("Payload", b""))


# --------------------------------------------------------------------------------------------- SOAP


def build_soap(message: CoreMessage, element: str) -> tuple[bytes, str]:
    """The HTTP body and Content-Type of ``message`` as a SOAP 1.2 envelope whose body is the CORE
    WSDL's ``element`` (e.g. COREEnvelopeRealTimeRequest); credentials go in a WS-Security
    UsernameToken, as the rule prescribes for SOAP.

    Written as text: the bytes ElementTree's ``tostring`` gives for the same tree (``build_soap_tree``,
    the reference; ``tests/test_core_soap_build.py``) without building the tree, which cost a SOAP
    call several times the rest of its envelope. Were our namespaces ever registered with
    ElementTree (other prefixes), the tree is built."""
    if not _REGISTERED_NAMESPACES.isdisjoint(_ET_PREFIXES):
        return build_soap_tree(message, element)
    if message.username is None:  # ElementTree numbers the namespaces in the order it meets them
        core, head = "ns1", f'<ns0:Envelope xmlns:ns0="{SOAP_NS}" xmlns:ns1="{CORE_NS}"><ns0:Header />'
    else:
        username = _xml_element("ns1:Username", message.username)
        password = _xml_element("ns1:Password", message.password or "", _PASSWORD_TYPE)
        declared = f'xmlns:ns0="{SOAP_NS}" xmlns:ns1="{WSSE_NS}" xmlns:ns2="{CORE_NS}"'
        token = f"<ns1:Security><ns1:UsernameToken>{username}{password}</ns1:UsernameToken></ns1:Security>"
        core, head = "ns2", f"<ns0:Envelope {declared}><ns0:Header>{token}</ns0:Header>"
    parts = [_XML_DECLARATION, head, f"<ns0:Body><{core}:{element}>"]
    parts += [
        _xml_element(_SOAP_NAMES.get(name, name), value)
        for name, value in _fields(replace(message, username=None, password=None))
    ]
    if message.payload:
        parts.append(_xml_element("Payload", message.payload.decode("latin-1")))
    parts.append(f"</{core}:{element}></ns0:Body></ns0:Envelope>")
    data = "".join(parts).encode("utf-8", "xmlcharrefreplace")
    return data, _soap_content_type(element)


_XML_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>\n"
_PASSWORD_TYPE = f' Type="{PASSWORD_TEXT}"'
_REGISTERED_NAMESPACES = frozenset({SOAP_NS, CORE_NS, WSSE_NS})
# ElementTree's registry of namespace prefixes (``register_namespace`` changes it in place)
_ET_PREFIXES: dict[str, str] = getattr(ElementTree, "_namespace_map", {})


def _xml_element(tag: str, text: str, attributes: str = "") -> str:
    """One element with text, as ElementTree writes it (an empty one as ``<tag />``)."""
    if not text:
        return f"<{tag}{attributes} />"
    if "&" in text or "<" in text or ">" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<{tag}{attributes}>{text}</{tag}>"


def _soap_content_type(element: str) -> str:
    action = "RealTimeTransaction" if "RealTime" in element else "BatchTransaction"
    return f'application/soap+xml; charset=UTF-8; action="{action}"'


def build_soap_tree(message: CoreMessage, element: str) -> tuple[bytes, str]:
    """``build_soap`` by ElementTree: the reference, and the way when our namespaces are registered."""
    env = Element(f"{{{SOAP_NS}}}Envelope")
    header = SubElement(env, f"{{{SOAP_NS}}}Header")
    if message.username is not None:
        sec = SubElement(header, f"{{{WSSE_NS}}}Security")
        token = SubElement(sec, f"{{{WSSE_NS}}}UsernameToken")
        SubElement(token, f"{{{WSSE_NS}}}Username").text = message.username
        pw = SubElement(token, f"{{{WSSE_NS}}}Password", {"Type": PASSWORD_TEXT})
        pw.text = message.password or ""
    body = SubElement(env, f"{{{SOAP_NS}}}Body")
    core = SubElement(body, f"{{{CORE_NS}}}{element}")
    for name, value in _fields(replace(message, username=None, password=None)):
        SubElement(core, _SOAP_NAMES.get(name, name)).text = value
    if message.payload:
        SubElement(core, "Payload").text = message.payload.decode("latin-1")
    data = tostring(env, encoding="utf-8", xml_declaration=True)
    return data, _soap_content_type(element)


def parse_soap(body: bytes) -> tuple[str, CoreMessage]:
    """Read a SOAP 1.2 CORE envelope: (the body element's local name, the message)."""
    if b"<!" in body.replace(b"<![CDATA[", b""):  # no DTD, hence no entity expansion or external entity
        raise EnvelopeError("CORE envelope: SOAP with a DTD or entity declaration is refused")
    try:
        root = fromstring(body)  # noqa: S314 - no DTD reaches the parser (checked above)
    except (ParseError, UnicodeDecodeError, ValueError):
        raise EnvelopeError("CORE envelope: not well-formed SOAP XML") from None
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        raise EnvelopeError("CORE envelope: the root element is not a SOAP 1.2 Envelope")
    body_el = root.find(f"{{{SOAP_NS}}}Body")
    if body_el is None or len(body_el) != 1:
        raise EnvelopeError("CORE envelope: the SOAP Body must hold exactly one element")
    core = body_el[0]
    name = core.tag.rsplit("}", 1)[-1]
    if name == "Fault":
        raise EnvelopeError("CORE envelope: the partner answered with a SOAP Fault")
    values = {child.tag.rsplit("}", 1)[-1]: (child.text or "").encode("utf-8") for child in core}
    payload = (
        values.pop("Payload", b"").decode("utf-8").encode("latin-1", errors="strict")
        if "Payload" in values
        else b""
    )
    token = root.find(f"{{{SOAP_NS}}}Header/{{{WSSE_NS}}}Security/{{{WSSE_NS}}}UsernameToken")
    if token is not None:
        values["UserName"] = (token.findtext(f"{{{WSSE_NS}}}Username") or "").encode()
        values["Password"] = (token.findtext(f"{{{WSSE_NS}}}Password") or "").encode()
    return name, _from_values(values, payload)


# --------------------------------------------------------------------------------------------- common


def _text(values: dict[str, bytes], name: str, *, required: bool) -> str | None:
    raw = values.get(name)
    if raw is None or raw == b"":
        if required:
            raise EnvelopeError(f"CORE envelope: {name} is missing")
        return None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise EnvelopeError(f"CORE envelope: {name} is not UTF-8 text") from None
    if len(text) > MAX_FIELD or (text and not _TOKEN.match(text)):
        raise EnvelopeError(f"CORE envelope: {name} is not a short printable value")
    return text


def _from_values(raw: dict[str, bytes], payload: bytes) -> CoreMessage:
    values = {_CANONICAL.get(name.lower(), name): value for name, value in raw.items()}
    error_code = _text(values, "ErrorCode", required=False)
    failed = error_code not in (None, SUCCESS)
    msg = CoreMessage(
        payload_type=_payload_type(_text(values, "PayloadType", required=not failed) or ""),
        processing_mode=_text(values, "ProcessingMode", required=not failed) or "",
        payload_id=_text(values, "PayloadID", required=True) or "",
        timestamp=_text(values, "TimeStamp", required=not failed) or "",
        sender_id=_text(values, "SenderID", required=not failed) or "",
        receiver_id=_text(values, "ReceiverID", required=not failed) or "",
        payload=payload,
        core_rule_version=_text(values, "CORERuleVersion", required=not failed) or "",
        checksum=_text(values, "Checksum", required=False) or "",
        error_code=error_code,
        error_message=_text(values, "ErrorMessage", required=False),
        username=_text(values, "UserName", required=False),
        password=values["Password"].decode("utf-8", "replace") if "Password" in values else None,
    )
    length = _text(values, "PayloadLength", required=False)
    if length is not None and (not length.isdigit() or int(length) != len(payload)):
        raise EnvelopeError("CORE envelope: PayloadLength does not match the payload")
    return msg


def _payload_type(text: str) -> str:
    """Our spelling of a PayloadType we know whatever its case (``X12_999_Response_005010x231A1`` is
    seen in the field); an unknown type is kept as sent."""
    return _KNOWN_TYPES.get(text.lower(), text)


def build(message: CoreMessage, style: EnvelopeStyle, element: str) -> tuple[bytes, str]:
    """``message`` as an HTTP body and Content-Type in ``style`` (``element``: the SOAP body element)."""
    return build_mime(message) if style == "mime" else build_soap(message, element)


def parse(body: bytes, content_type: str) -> tuple[str | None, CoreMessage]:
    """Read either style, told apart by the Content-Type: (SOAP body element or None, message)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        return None, parse_mime(body, content_type)
    if kind in {"application/soap+xml", "text/xml", "application/xml"}:
        return parse_soap(body)
    raise EnvelopeError("CORE envelope: unexpected Content-Type (neither multipart/form-data nor SOAP)")
