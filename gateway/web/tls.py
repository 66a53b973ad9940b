"""Mutual TLS for ``x12gw serve``: the verified client certificate's subject, handed to the app.

uvicorn verifies a client certificate against ``ssl_ca_certs`` (the handshake fails for a certificate
the CA did not sign) but does not pass the certificate to the application. This protocol class reads
the peer certificate once per connection and puts its subject (RFC 4514 text) into the connection's
ASGI ``state``, where :func:`gateway.web.apiauth.peer_subject` finds it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.web.apiauth import TLS_SUBJECT


def certificate_subject(der: bytes) -> str:
    """The subject of a DER certificate as RFC 4514 text (``CN=billing,O=Clinic``)."""
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


class ClientCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus the verified client certificate's subject in the scope state."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object: Any = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if isinstance(ssl_object, ssl.SSLObject) else None
        if der:
            # a per-connection copy: the server's state dict is shared by every connection
            self.app_state = {**self.app_state, TLS_SUBJECT: certificate_subject(der)}
