"""Answers gzipped for a client that takes gzip: JSON, logs, the CSV export, the metrics.

A study page asks for its charts as plotly JSON, again as its trials end while it runs: those
of a 10,000-trial study are 2.6 MB, 0.64 MB gzipped (``benchmarks/ui_render.py``); a trial's log
may be 8 MiB. Over a tunnel or ``kubectl port-forward`` that is the reader's wait. Compressing
1.1 MB of JSON takes about 6 ms of CPU.

Only answers of 200 to ``GET`` and ``HEAD`` are compressed, and no page or fragment: a page
holds its session's CSRF token, and no secret may share a compressed answer with what a request
put there (the BREACH attack). A streamed answer (a log, the CSV export) is compressed as it is
read, never held whole. A whole answer under 1 KB is sent as it is: gzip would not shrink it by
much. A chart comes here gzipped already: it is compressed once, as it is kept
(:mod:`.chart_cache`).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator

from flask import Request, Response
from werkzeug.wsgi import ClosingIterator

COMPRESSED_TYPES = frozenset({"application/json", "text/plain", "text/csv", "application/openmetrics-text"})
"""OpenMetrics too: the format Prometheus asks for first, which it takes gzipped as it does the text format."""
MIN_BYTES = 1024
LEVEL = 6
"""zlib's own default: on plotly's bundle within 0.3% of level 9's size, in 85% of its time
(0.21 s); level 1 leaves it 16% larger."""
GZIP_WBITS = 16 + zlib.MAX_WBITS
"""zlib's window size, with a gzip header and trailer around the stream."""


def accepts_gzip(request: Request) -> bool:
    """Whether the client takes gzip (``Accept-Encoding``, a quality above 0, ``*`` included)."""
    return request.accept_encodings.quality("gzip") > 0


def gzip_bytes(body: bytes) -> bytes:
    """``body`` gzipped, the same bytes for the same body: no time stamp in the header."""
    return gzip.compress(body, compresslevel=LEVEL, mtime=0)


def compressed(request: Request, response: Response) -> Response:
    """``response`` gzipped where it is worth it and the client takes it; ``Vary`` says that
    its encoding follows ``Accept-Encoding`` wherever it could have."""
    if not _could_compress(request, response):
        return response
    response.vary.add("Accept-Encoding")
    if not accepts_gzip(request):
        return response
    if response.is_streamed:
        source = response.response
        response.response = ClosingIterator(_gzip_stream(source), getattr(source, "close", None))
    else:
        body = response.get_data()
        if len(body) < MIN_BYTES:
            return response
        response.set_data(gzip_bytes(body))
    response.headers["Content-Encoding"] = "gzip"
    return response


def _could_compress(request: Request, response: Response) -> bool:
    return (request.method in ("GET", "HEAD") and response.status_code == 200
            and response.mimetype in COMPRESSED_TYPES and not response.direct_passthrough
            and "Content-Encoding" not in response.headers)


def _gzip_stream(chunks: Iterable[str | bytes]) -> Iterator[bytes]:
    """``chunks`` (text as UTF-8) as one gzip stream, each piece sent once zlib has one to send."""
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, GZIP_WBITS)
    for chunk in chunks:
        packed = packer.compress(chunk.encode() if isinstance(chunk, str) else chunk)
        if packed:
            yield packed
    yield packer.flush()
