"""Which local account a loopback caller is: the owner of the client's end of its TCP connection.

Without ``KATUNA_API_TOKEN`` the service takes requests from loopback only, but every account
of the machine can connect to loopback, and a study is a command run as the service's user. So
in that mode a request is taken only from a socket of the service's own user (or root, who can
be that user anyway). On Linux the kernel lists every TCP socket of the network namespace, with
its owner's uid, in ``/proc/net/tcp`` and ``/proc/net/tcp6``; the client's end is the entry
whose local address is the connection's peer and whose remote address is the connection's own
end. Both are read from the connected socket itself (gunicorn's ``SERVER_PORT`` follows the
``Host`` header, which the caller writes). Where those tables are missing (not Linux), nothing
can be told, and the service warns at start that every local account can reach it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterable

TABLES = {socket.AF_INET: "/proc/net/tcp", socket.AF_INET6: "/proc/net/tcp6"}
CLOSED_STATES = ("06", "0A")
"""TIME_WAIT (whose entry no longer has its owner's uid) and LISTEN: never a client's live end."""


def kernel_address(name: tuple) -> str:
    """An address as ``getsockname``/``getpeername`` give it, written as the tables write it:
    the address as the kernel holds it (an IPv6 socket's IPv4 peer as ``::ffff:a.b.c.d``), in
    32-bit words each printed in this machine's byte order, then the port, in hex."""
    packed = ipaddress.ip_address(name[0].partition("%")[0]).packed
    words = (struct.unpack("=I", packed[i:i + 4])[0] for i in range(0, len(packed), 4))
    return "".join(f"{word:08X}" for word in words) + f":{name[1]:04X}"


def owner(table: Iterable[str], local: str, remote: str) -> int | None:
    """The uid owning the live socket whose ends are ``local`` and ``remote`` (as
    :func:`kernel_address` writes them) among a table's lines, or None."""
    for line in table:
        if local not in line:
            continue
        fields = line.split()
        if fields[1:3] == [local, remote] and fields[3] not in CLOSED_STATES:
            return int(fields[7])
    return None


def peer_uid(connection: socket.socket) -> int | None:
    """The uid owning the other end of ``connection`` when it is on this machine; None when no
    table lists it (not a local caller, or no such tables here)."""
    try:
        peer, own = connection.getpeername(), connection.getsockname()
        for table, local, remote in _where(peer, own):
            with open(table, encoding="ascii") as lines:
                uid = owner(lines, kernel_address(local), kernel_address(remote))
            if uid is not None:
                return uid
    except OSError:
        return None
    return None


def _where(peer: tuple, own: tuple) -> list[tuple[str, tuple, tuple]]:
    """The tables that can list the client's end, with its ends as they would be listed there:
    an IPv4 client of a dual-stack listener (``::ffff:a.b.c.d``) has an IPv4 socket, in
    /proc/net/tcp, unless it too is an IPv6 socket."""
    mapped = getattr(ipaddress.ip_address(peer[0].partition("%")[0]), "ipv4_mapped", None)
    if mapped is None:
        return [(TABLES[socket.AF_INET6 if ":" in peer[0] else socket.AF_INET], peer, own)]
    plain_own = str(ipaddress.IPv6Address(own[0].partition("%")[0]).ipv4_mapped or own[0]), own[1]
    return [(TABLES[socket.AF_INET], (str(mapped), peer[1]), plain_own), (TABLES[socket.AF_INET6], peer, own)]


def can_tell() -> bool:
    """Whether this machine lists its sockets' owners (Linux's /proc/net)."""
    return os.path.exists(TABLES[socket.AF_INET])


def trusted(uid: int) -> bool:
    """Whether ``uid`` may use the service without a token: its own user, or root."""
    return uid in (os.geteuid(), 0)
