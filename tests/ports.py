"""Blocks of free loopback ports for servers that tests start in other processes.

A port found free here is bound later by another process (the stack's API server, the sample sites), so the
block must not be one the kernel hands out meanwhile as the source port of an outgoing connection: with two
test workers running brokers, Kafka clients and HTTP clients, a block inside the ephemeral range was taken
between the check and the bind often enough to fail a stack test. Blocks are therefore drawn below that range.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):  # not Linux: the IANA dynamic range
        return 49_152


def free_block(size: int) -> int:
    """The first port of ``size`` consecutive ports that are free now and outside the ephemeral range."""
    highest = _ephemeral_start() - size
    if highest <= _LOWEST:
        raise RuntimeError(f"no room below the ephemeral port range for {size} ports")
    for _ in range(100):
        base = random.randint(_LOWEST, highest)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free port block")
