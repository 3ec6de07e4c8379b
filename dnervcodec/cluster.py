"""A Ray cluster's address (`--ray auto|HOST:PORT`), parsed and probed without importing Ray or torch.

Ray's own client retries an address that does not answer for minutes, printing a warning every few
seconds. So before Ray is asked to connect, the address is checked here in a few seconds: a TCP
connection, then an HTTP/2 handshake (Ray's head serves gRPC, which speaks HTTP/2: its first frame back
is a SETTINGS frame). A closed port, a wrong host or a service that is not a gRPC server is one line.
"""

from __future__ import annotations

import re
import socket

from .errors import ConfigError

AUTO = "auto"
PROBE_SECONDS = 3.0
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + an empty SETTINGS
_SETTINGS = 4  # HTTP/2 frame type


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[IPv6]:PORT' -> (host, port); ConfigError naming the expected form otherwise."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9][A-Za-z0-9.\-]*):(\d{1,5})", text.strip())
    port = int((m.group(2) or m.group(4))) if m else 0
    if not m or not 1 <= port <= 65535:
        raise ConfigError(f"'{text}' is not auto or a Ray head's HOST:PORT, e.g. 10.0.0.5:6379")
    return (m.group(1) or m.group(3)), port


def probe(address: str, seconds: float = PROBE_SECONDS) -> None:
    """Whether a Ray head (a gRPC server) answers at HOST:PORT within `seconds`; ConfigError saying why not."""
    host, port = parse_address(address)
    hint = "start it with `ray start --head --port PORT`, or check the address"
    try:
        with socket.create_connection((host, port), timeout=seconds) as conn:
            conn.settimeout(seconds)
            conn.sendall(_HTTP2_PREFACE)
            frame = _read(conn, 9)
    except socket.timeout:
        raise ConfigError(f"no Ray cluster answers at {address} within {seconds:g} s: {hint}") from None
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ConfigError(f"cannot reach a Ray cluster at {address} ({reason.lower()}): {hint}") from None
    if len(frame) < 9 or frame[3] != _SETTINGS:
        raise ConfigError(f"{address} answers, but not as a Ray cluster (no gRPC server there): {hint}")


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data
