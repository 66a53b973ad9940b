"""Keys: OpenSSH public-key lines, private key files, known_hosts, and the pinned host-key policy
that refuses any server key the partner did not announce."""

from __future__ import annotations

import base64
import binascii
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
from paramiko.pkey import UnknownKeyType

from gateway.errors import ConfigError, HostKeyError
from gateway.transport.names import safe_display

if TYPE_CHECKING:
    from gateway.transport.sftp import SftpEndpoint


def parse_public_key(line: str) -> paramiko.PKey:
    """Parse an OpenSSH public-key line (``ssh-ed25519 AAAA... [comment]``) into a key object."""
    parts = line.split()
    if len(parts) < 2:
        raise ConfigError("public key line must look like '<type> <base64> [comment]'")
    key_type, blob = parts[0], parts[1]
    try:
        data = base64.b64decode(blob, validate=True)
        key = paramiko.PKey.from_type_string(key_type, data)
    except (binascii.Error, ValueError, TypeError, UnknownKeyType, paramiko.SSHException) as exc:
        raise ConfigError(f"public key line of type {safe_display(key_type, 40)} is not valid") from exc
    if key_type not in type(key).identifiers():
        raise ConfigError(f"public key line says {safe_display(key_type, 40)} but holds {key.get_name()}")
    return key


def public_key_line(key: paramiko.PKey) -> str:
    """The OpenSSH public-key line of ``key`` (for pinning or authorized_keys)."""
    return f"{key.get_name()} {key.get_base64()}"


def load_private_key(path: Path, passphrase: str | None = None) -> paramiko.PKey:
    """Load an ed25519, ECDSA or RSA private key, refusing files group/others can access (like ssh)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"private key file {path} cannot be read: {exc.strerror}") from exc
    if mode & 0o077:
        raise ConfigError(
            f"private key file {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            "run chmod 600 on it"
        )
    try:
        return paramiko.PKey.from_path(path, password=passphrase)
    except paramiko.PasswordRequiredException as exc:
        raise ConfigError(f"private key file {path} is encrypted and no passphrase was given") from exc
    except (ValueError, TypeError, UnknownKeyType, paramiko.SSHException, OSError) as exc:
        raise ConfigError(f"private key file {path} is not a usable ed25519/ECDSA/RSA key") from exc


def _host_matches(pattern: str, name: str) -> bool:
    """known_hosts host field: a plain name or an OpenSSH hashed name (``|1|salt|hash``)."""
    if pattern.startswith("|1|"):
        parts = pattern.split("|")
        return len(parts) == 4 and paramiko.HostKeys.hash_host(name, parts[2]) == pattern
    return pattern == name


def _known_hosts_keys(path: Path, name: str) -> list[paramiko.PKey]:
    """Every key a known_hosts file lists for ``name`` (several per type are kept, for key rotation).

    Exact host names and hashed names are supported; wildcard patterns and ``@cert-authority`` /
    ``@revoked`` lines are ignored, as are lines paramiko cannot parse.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"known_hosts file {path} cannot be read: {exc.strerror}") from exc
    keys = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "@")):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
        except (paramiko.hostkeys.InvalidHostKey, UnknownKeyType, paramiko.SSHException, ValueError):
            continue
        if entry is not None and any(_host_matches(h, name) for h in entry.hostnames):
            keys.append(entry.key)
    return keys


def pinned_host_keys(endpoint: SftpEndpoint) -> tuple[paramiko.PKey, ...]:
    """The host keys the endpoint trusts: its ``host_keys`` lines plus known_hosts entries for it."""
    keys = [parse_public_key(line) for line in endpoint.host_keys]
    if endpoint.known_hosts_file is not None:
        keys += _known_hosts_keys(endpoint.known_hosts_file, endpoint.host_key_name)
    return tuple(keys)


def _host_key_algorithms(keys: tuple[paramiko.PKey, ...]) -> set[str]:
    """Signature algorithms that prove possession of the pinned keys (RSA keys sign with SHA-2)."""
    names = {k.get_name() for k in keys}
    return {alg for name in names for alg in (_RSA_HOST_KEY_ALGORITHMS if name == "ssh-rsa" else (name,))}


_RSA_HOST_KEY_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256")
# Every host key algorithm paramiko may offer; all but the pinned ones are disabled, so a server
# holding several host keys presents the one we pinned instead of its favourite.
_ALL_HOST_KEY_ALGORITHMS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    *_RSA_HOST_KEY_ALGORITHMS,
    "ssh-rsa",
)


class _PinnedHostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Accept only the pinned keys (paramiko's own host-key store is left empty, so every key the
    server presents comes here); anything else is refused with the offered fingerprint."""

    def __init__(self, partner: str, pins: tuple[paramiko.PKey, ...]) -> None:
        self._partner = partner
        self._pins = pins

    def missing_host_key(
        self,
        client: paramiko.SSHClient,  # noqa: ARG002 - paramiko's signature; not needed here
        hostname: str,
        key: paramiko.PKey,
    ) -> None:
        offered = key.asbytes()
        if any(pin.asbytes() == offered for pin in self._pins):
            return
        shown = f"{key.get_name()} {key.fingerprint}"
        if not self._pins:
            message = f"server offered unknown host key {shown}; no key is pinned for {hostname}"
        else:
            pinned = ", ".join(f"{pin.get_name()} {pin.fingerprint}" for pin in self._pins)
            message = f"host key changed: server offered {shown}, pinned is {pinned}"
        raise HostKeyError(
            f"sftp {self._partner}: connect refused: {message}",
            offered_fingerprint=key.fingerprint,
            partner=self._partner,
        )
