"""The project's one exception hierarchy.

Validation *findings* are data (see ``transactions.validation``); these exceptions are for input that
cannot be read as X12 at all, for programming errors at the API boundary, and (in ``gateway``) for
failures of the outside world. Messages carry positions and segment ids, never element values, because
element values may be PHI.
"""

from __future__ import annotations


class X12GatewayError(Exception):
    """Root of every error this project raises on purpose."""


class X12SyntaxError(X12GatewayError):
    """Input is not readable X12; ``offset`` (bytes) and ``segment`` (1-based count) say where."""

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        segment: int | None = None,
        raw_isa: bytes | None = None,
    ) -> None:
        where = []
        if offset is not None:
            where.append(f"byte offset {offset}")
        if segment is not None:
            where.append(f"segment {segment}")
        super().__init__(f"{message} (at {', '.join(where)})" if where else message)
        self.reason = message
        self.offset = offset
        self.segment = segment
        # The 106 bytes of a broken ISA, kept (never printed) so a TA1 can still quote ISA13/09/10.
        self.raw_isa = raw_isa


class NotX12Error(X12SyntaxError):
    """The data does not start with an ISA segment."""


class IsaError(X12SyntaxError):
    """The ISA segment is not the fixed 106 characters or its fields are malformed."""


class DelimiterError(X12SyntaxError):
    """The four delimiters are not distinct single characters, or are unusable."""


class TruncatedError(X12SyntaxError):
    """The data ends inside a segment or inside an interchange."""


class X12WriteError(X12GatewayError):
    """A value cannot be serialised (it contains a delimiter, or does not fit an ISA field)."""


class RequestError(X12GatewayError):
    """A request (JSON/CSV/model) is invalid; ``field`` names the path of the offending field."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.reason = message
        self.field = field
