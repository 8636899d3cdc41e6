"""Which local account a loopback caller is: the owner of the client's end of its TCP connection.

Without ``KATUNA_API_TOKEN`` the service takes requests from loopback only, but every account
of the machine can connect to loopback, and a study is a command run as the service's user. So
in that mode a request is taken only from a socket of the service's own user (or root, who can
be that user anyway). On Linux the kernel tells a socket's owner through its sock_diag netlink
interface: asked for the one TCP socket whose local end is the connection's peer and whose
remote end is the connection's own end, it answers with that socket's uid, at a cost that does
not depend on how many sockets the machine holds. Both ends are read from the connected socket
itself (gunicorn's ``SERVER_PORT`` follows the ``Host`` header, which the caller writes).

Where sock_diag cannot be used (a kernel without it, a sandbox that refuses netlink), the same
socket is looked up in ``/proc/net/tcp`` and ``/proc/net/tcp6``, the kernel's tables of every
TCP socket of the network namespace, which cost about 1 µs per socket listed. Where neither is
there (not Linux), nothing can be told, and the service warns at start that every local account
can reach it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import itertools
import json
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


NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
NLMSG_HEADER = struct.Struct("=IHHII")
"""struct nlmsghdr: length (header included), type, flags, sequence number, sender's port id."""
DIAG_REQUEST = struct.Struct("=BBBxI")
"""struct inet_diag_req_v2 up to its socket id: family, protocol, extensions, pad, states."""
SOCKET_ID = struct.Struct("!HH16s16s")
"""struct inet_diag_sockid up to its interface: source and destination ports (big-endian), then
the two addresses (4 x __be32 each; an IPv4 address fills the first 4 bytes)."""
SOCKET_ID_TAIL = struct.Struct("=III")
"""The socket id's interface index and its two-word cookie, in this machine's byte order."""
DIAG_MESSAGE = struct.Struct("=BBBB48sIIIII")
"""struct inet_diag_msg: family, state, timer, retransmits, socket id, expires, receive and send
queues, uid, inode."""
TCP_TIME_WAIT, TCP_LISTEN, TCP_NEW_SYN_RECV = 6, 10, 12
NO_COOKIE = 0xFFFFFFFF
"""INET_DIAG_NOCOOKIE, in each of the cookie's two words."""
LIVE_STATES = 0xFFFFFFFF & ~(1 << TCP_TIME_WAIT | 1 << TCP_LISTEN)
ANSWER_TIMEOUT_S = 1.0
REFUSAL_HEAD = ("HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
                "Connection: close\r\n\r\n")
DISCARD_LIMIT = 1 << 16
"""The most bytes already received that a refused connection throws away (without waiting for
more) before it closes, so that the close is not a reset that could destroy the answer."""
_sequence = itertools.count(1)


def diag_request(family: int, local: tuple, remote: tuple, sequence: int) -> bytes:
    """A SOCK_DIAG_BY_FAMILY request for the one TCP socket of ``family`` whose ends are
    ``local`` and ``remote`` (addresses as text, ports; an IPv6 end's scope id names the
    interface)."""
    source = ipaddress.ip_address(local[0].partition("%")[0]).packed.ljust(16, b"\0")
    destination = ipaddress.ip_address(remote[0].partition("%")[0]).packed.ljust(16, b"\0")
    interface = local[3] if len(local) > 3 else 0
    body = (DIAG_REQUEST.pack(family, socket.IPPROTO_TCP, 0, LIVE_STATES)
            + SOCKET_ID.pack(local[1], remote[1], source, destination)
            + SOCKET_ID_TAIL.pack(interface, NO_COOKIE, NO_COOKIE))
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, sequence, 0) + body


def diag_owner(answer: bytes, sequence: int) -> int | None:
    """The uid in the kernel's answer to :func:`diag_request`; None when it has no such live
    socket (``ENOENT``, or a TIME_WAIT, LISTEN or half-open entry, which carry no owner). Any
    other error of the kernel's is raised as :class:`OSError`."""
    offset = 0
    while offset + NLMSG_HEADER.size <= len(answer):
        length, kind, _flags, seq, _port = NLMSG_HEADER.unpack_from(answer, offset)
        if length < NLMSG_HEADER.size or offset + length > len(answer):
            break
        payload = offset + NLMSG_HEADER.size
        offset += (length + 3) & ~3
        if seq != sequence or kind in (NLMSG_NOOP, NLMSG_DONE):
            continue
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", answer, payload)
            if -error == errno.ENOENT:
                return None
            raise OSError(-error, os.strerror(-error))
        if kind == SOCK_DIAG_BY_FAMILY and length - NLMSG_HEADER.size >= DIAG_MESSAGE.size:
            _family, state, *_rest, uid, _inode = DIAG_MESSAGE.unpack_from(answer, payload)
            return None if state in (TCP_TIME_WAIT, TCP_LISTEN, TCP_NEW_SYN_RECV) else uid
    raise OSError(errno.EPROTO, "no answer from sock_diag")


def socket_owner(family: int, local: tuple, remote: tuple) -> int | None:
    """The uid owning the live TCP socket with these ends, asked of the kernel through sock_diag;
    None when there is none. Raises :class:`OSError` where sock_diag cannot be used."""
    sequence = next(_sequence)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as link:
        link.settimeout(ANSWER_TIMEOUT_S)
        link.sendto(diag_request(family, local, remote, sequence), (0, 0))
        return diag_owner(link.recv(65536), sequence)


def peer_uid(connection: socket.socket) -> int | None:
    """The uid owning the other end of ``connection`` when it is on this machine; None when the
    kernel has no such socket here (not a local caller) or cannot say (not Linux).

    When sock_diag finds no client end, it is asked for the service's own end too: found, the
    answer stands; not found either, sock_diag does not see this namespace's sockets (a kernel
    without its TCP module answers ``ENOENT`` as well), and the tables are read instead."""
    try:
        peer, own = connection.getpeername(), connection.getsockname()
    except OSError:
        return None
    family, client, server = _as_filed(peer, own)
    try:
        uid = socket_owner(family, client, server)
        if uid is not None or socket_owner(family, server, client) is not None:
            return uid
    except (OSError, AttributeError):  # AttributeError: no AF_NETLINK (not Linux)
        pass
    return _table_uid(peer, own)


def _as_filed(peer: tuple, own: tuple) -> tuple[socket.AddressFamily, tuple, tuple]:
    """The family and ends under which the kernel files the client's socket: an IPv4 client of a
    dual-stack listener (``::ffff:a.b.c.d``) is reached by its IPv4 ends, whether it is an IPv4
    socket or an IPv6 one connected to a mapped address."""
    mapped = getattr(ipaddress.ip_address(peer[0].partition("%")[0]), "ipv4_mapped", None)
    if mapped is None:
        return (socket.AF_INET6 if ":" in peer[0] else socket.AF_INET), peer, own
    plain_own = str(ipaddress.IPv6Address(own[0].partition("%")[0]).ipv4_mapped or own[0])
    return socket.AF_INET, (str(mapped), peer[1]), (plain_own, own[1])


def _table_uid(peer: tuple, own: tuple) -> int | None:
    """The fallback where sock_diag is not there: the client's end looked up in /proc/net."""
    try:
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
    where the kernel files it (:func:`_as_filed`), and for an IPv4 client of a dual-stack
    listener also /proc/net/tcp6 under its mapped ends, the tables writing an IPv6 socket
    connected to a mapped address so."""
    family, client, server = _as_filed(peer, own)
    where = [(TABLES[family], client, server)]
    return where if client == peer else [*where, (TABLES[socket.AF_INET6], peer, own)]


def can_tell() -> bool:
    """Whether this machine tells its sockets' owners (Linux's sock_diag, or its /proc/net)."""
    if os.path.exists(TABLES[socket.AF_INET]):
        return True
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG).close()
    except (OSError, AttributeError):
        return False
    return True


def trusted(uid: int) -> bool:
    """Whether ``uid`` may use the service without a token: its own user, or root."""
    return uid in (os.geteuid(), 0)


def refused_caller(connection: socket.socket) -> str | None:
    """Who the caller on ``connection`` is, for its refusal, when a server that serves only its
    own user refuses it; None when it takes it: a connection of its own user or root, or any
    where this machine cannot tell (not Linux). A connection the kernel does not list (another
    host's or container's) is refused too."""
    uid = peer_uid(connection)
    if (uid is None and not can_tell()) or (uid is not None and trusted(uid)):
        return None
    return "this machine does not list (another host's or container's)" if uid is None else f"of uid {uid}"


def stranger(connection: socket.socket) -> str | None:
    """Why a service without a token refuses ``connection`` (:func:`refused_caller`), or None
    when it takes it."""
    caller = refused_caller(connection)
    if caller is None:
        return None
    return (f"without KATUNA_API_TOKEN this service takes requests only from its own user (uid {os.geteuid()}) on "
            f"this machine, not from a caller {caller}: a study runs commands as the service's user. Set "
            "KATUNA_API_TOKEN to serve other users, who then send Authorization: Bearer <token>")


def turn_away(connection: socket.socket, message: str) -> None:
    """Answer ``403`` on a connection without reading the request, and close it. The answer is
    written only if it fits at once; what the client already sent is thrown away unread (up
    to :data:`DISCARD_LIMIT`, never waiting), so that the close is not a reset."""
    body = json.dumps({"error": "local_user_not_allowed", "message": message, "retryable": False}).encode()
    with contextlib.suppress(OSError), connection:
        connection.setblocking(False)
        connection.send(REFUSAL_HEAD.format(length=len(body)).encode() + body)
        connection.shutdown(socket.SHUT_WR)
        discarded = 0
        while discarded < DISCARD_LIMIT:
            received = connection.recv(DISCARD_LIMIT)  # BlockingIOError once nothing more is there
            if not received:
                return
            discarded += len(received)
