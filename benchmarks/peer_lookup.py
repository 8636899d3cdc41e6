"""What finding a loopback caller's owner costs the service, per request, as the machine's TCP
sockets grow: Linux's sock_diag netlink lookup (what ``katuna serve`` uses without a token) beside
the read of /proc/net/tcp it falls back to.

A loopback connection is made, then its client's owner looked up from the accepted socket, many
times, each way; then ``--sockets`` connections are opened and closed, leaving as many TIME_WAIT
sockets in the network namespace's table (for a minute), and the lookups are timed again.
Figures are CPU time per lookup (median of the rounds).

Ends with ``tables_sockets=`` (sockets listed in /proc/net/tcp and tcp6 under load),
``tables_us_per_lookup=`` and ``sock_diag_us_per_lookup=`` (both under load).
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import report

from functions.adapters.web import peers

NAME = "peer_lookup"


def listed() -> int:
    """Sockets in /proc/net/tcp and tcp6 (header lines excluded)."""
    return sum(max(0, len(Path(t).read_text().splitlines()) - 1) for t in peers.TABLES.values() if Path(t).exists())


def cpu_us(lookup: Callable[[], int | None], times: int, rounds: int) -> float:
    """The median over ``rounds`` of the CPU time of one lookup, in µs."""
    spent = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(times):
            lookup()
        spent.append((time.process_time() - start) / times * 1e6)
    return statistics.median(spent)


def time_wait(count: int) -> None:
    """Leave ``count`` client sockets in TIME_WAIT: each connection closed by its client first."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        for _ in range(count):
            client = socket.create_connection(listener.getsockname())
            accepted, _ = listener.accept()
            client.close()
            accepted.close()


def measure(sockets: int, times: int, rounds: int) -> list[dict[str, float]]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                peer, own = accepted.getpeername(), accepted.getsockname()
                assert client.getsockname() == peer
                results = []
                for extra in (0, sockets):
                    time_wait(extra)
                    assert peers.peer_uid(accepted) == peers._table_uid(peer, own) is not None
                    results.append({"time_wait_added": extra, "tables_sockets": listed(),
                                    "tables_us": cpu_us(lambda: peers._table_uid(peer, own), max(1, times // 10), rounds),
                                    "sock_diag_us": cpu_us(lambda: peers.peer_uid(accepted), times, rounds)})
                return results


def plot(results: list[dict[str, float]], out: Path | None) -> None:
    fig, ax = report.figure()
    xs = [r["tables_sockets"] for r in results]
    ax.plot(xs, [r["tables_us"] for r in results], marker="o", label="/proc/net/tcp read (fallback)")
    ax.plot(xs, [r["sock_diag_us"] for r in results], marker="o", label="sock_diag netlink")
    ax.set_xlabel("TCP sockets in the network namespace")
    ax.set_ylabel("CPU µs per lookup")
    ax.set_yscale("log")
    ax.legend()
    report.save_plot(fig, NAME, out)


def main(argv: list[str] | None = None) -> int:
    parser = report.arguments(__doc__, "500 TIME_WAIT sockets, few lookups (a smoke run)")
    parser.add_argument("--sockets", type=int, default=6000, help="TIME_WAIT sockets to add")
    parser.add_argument("--times", type=int, default=2000, help="sock_diag lookups a round (a tenth as many reads)")
    parser.add_argument("--rounds", type=int, default=5)
    args = report.parsed(parser, argv)
    if not Path(peers.TABLES[socket.AF_INET]).exists():
        parser.error("needs Linux's /proc/net/tcp")
    sockets, times, rounds = (500, 100, 3) if args.quick else (args.sockets, args.times, args.rounds)
    results = measure(sockets, times, rounds)
    keys = ["time_wait_added", "tables_sockets", "tables_us", "sock_diag_us"]
    print(report.table(keys, [[r[k] for k in keys] for r in results]))
    loaded = results[-1]
    report.save(NAME, {"sockets": sockets, "times": times, "rounds": rounds, "results": results}, args.out)
    plot(results, args.out)
    report.lines({"tables_sockets": loaded["tables_sockets"], "tables_us_per_lookup": round(loaded["tables_us"], 1),
                  "sock_diag_us_per_lookup": round(loaded["sock_diag_us"], 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
