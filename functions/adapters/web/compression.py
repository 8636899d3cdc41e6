"""JSON answers gzipped for a client that takes gzip: the study page's charts and the API's.

A study page asks for its charts as plotly JSON, again every few seconds while the study runs;
a contour chart of a 2,000-trial study is 1.1 MB, 12 KB gzipped, and a page of 500 trials 118 KB,
8 KB gzipped. Over a tunnel or ``kubectl port-forward`` that is the page's wait. Compressing
1.1 MB takes about 6 ms of CPU.

Only JSON is compressed, whole answers of 200 to ``GET`` and ``HEAD``: no page or fragment,
which holds a session's CSRF token, so no secret shares a compressed answer with what a request
put there (the BREACH attack); no streamed answer (the CSV export), which is sent as it is read;
nothing under 1 KB, which gzip would not shrink by much.
"""

from __future__ import annotations

import gzip

from flask import Request, Response

MIN_BYTES = 1024
LEVEL = 6
"""zlib's own default: most of what level 9 saves, at a third of its time on plotly's bundle."""


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
    body = response.get_data()
    if len(body) < MIN_BYTES:
        return response
    response.set_data(gzip_bytes(body))
    response.headers["Content-Encoding"] = "gzip"
    return response


def _could_compress(request: Request, response: Response) -> bool:
    return (request.method in ("GET", "HEAD") and response.status_code == 200
            and response.mimetype == "application/json" and not response.is_streamed
            and not response.direct_passthrough and "Content-Encoding" not in response.headers)
