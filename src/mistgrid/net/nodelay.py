"""TCP_NODELAY on this project's connections.

Every protocol here is request and answer (GBS, the web API, the CLI's requests to it),
and a message often leaves in more than one send: the HTTP head, then the body; a
streamed answer's last piece. With Nagle's algorithm on, such a small last part waits
until the peer acknowledges the first, and the peer may hold that acknowledgement back
for its delayed-ACK timer: 40 ms on Linux. Measured on the benchmark grid (4 KiB written
into a 100 MiB MDMF file, 8 writes, twice): about 1 in 3 took 0.054-0.059 s instead of
0.014-0.017 s; with TCP_NODELAY on the GBS connections none did. twisted.web's server
channel sets it on a plain TCP connection (the web API), not under our TLS layer, which
does it here (`net.tls`) for both ends of GBS; Python's http.client (the CLI) sets it on
its own.
"""

from __future__ import annotations

import contextlib
from typing import Any


def no_delay(transport: Any) -> None:
    """Turn Nagle's algorithm off on `transport` if it is a TCP connection (others, such
    as an I2P stream, are left as they are)."""
    switch = getattr(transport, "setTcpNoDelay", None)
    if switch is not None:
        with contextlib.suppress(OSError):
            switch(True)
