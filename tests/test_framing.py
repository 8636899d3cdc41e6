"""Where a request ends in the bytes a worker has gathered so far (:mod:`functions.adapters.web.framing`):
a thread takes a request once its head and body are here, ``Content-Length`` or chunked; it
takes one sooner, to read the rest under the client's deadline, where the bytes cannot say."""

from __future__ import annotations

import pytest

from functions.adapters.web.framing import GATHER_LIMIT, SIZE_LINE_LIMIT, Walk, request_size, waits_to_continue

LIMIT = 1 << 20
POST = b"POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"
HEAD = len(CHUNKED)


def test_a_content_length_body_is_waited_for_as_its_head_says_up_to_the_limit():
    head = POST + b"Content-Length: 10\r\n\r\n"
    assert request_size(head + b"12345", LIMIT) == request_size(head, LIMIT) == len(head) + 10, "known from the head"
    assert request_size(head + b"1234567890" + b"GET / HTTP/1.1\r\n", LIMIT) == len(head) + 10
    large = POST + f"Content-Length: {LIMIT + 1}\r\n\r\n".encode()
    assert request_size(large, LIMIT) == len(large), "a body past the limit is the thread's to refuse"


def test_a_head_not_yet_whole_is_waited_for_up_to_the_gather_limit():
    assert request_size(POST, LIMIT) is None
    assert request_size(POST + b"X-Long: " + b"y" * GATHER_LIMIT, LIMIT) == GATHER_LIMIT


@pytest.mark.parametrize("body", [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"5;name=value\r\nhello\r\n6 \r\n world\r\n0\r\n\r\n",
    b"A\r\n0123456789\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n",
    b"0\r\n\r\n",
], ids=["one chunk", "extensions", "trailer", "empty"])
def test_a_chunked_body_ends_after_its_last_chunk_and_trailer_and_is_waited_for_until_then(body: bytes):
    whole = CHUNKED + body
    assert request_size(whole + b"GET / HTTP/1.1\r\n", LIMIT) == len(whole), "nothing past its end"
    assert [request_size(whole[:cut], LIMIT) for cut in range(HEAD, len(whole))] == [None] * (len(whole) - HEAD)
    walk = Walk()
    assert [request_size(whole[:cut], LIMIT, walk) for cut in range(HEAD, len(whole) + 1)] == \
        [None] * (len(whole) - HEAD) + [len(whole)], "the same, a byte more at each call, going on from its walk"


def test_the_walk_of_a_chunked_body_goes_on_past_its_last_whole_chunk():
    """A body that comes a piece at a time is walked once: each call starts where the last one
    left its walk, past the last whole chunk."""
    walk, first = Walk(), CHUNKED + b"5\r\nhello\r\n3\r\nab"
    assert request_size(first, LIMIT, walk) is None
    assert (walk.position, walk.carried) == (HEAD + len(b"5\r\nhello\r\n"), 5)
    assert request_size(first + b"c\r\n0\r\n\r\n", LIMIT, walk) == len(first) + 8
    assert (walk.position, walk.carried) == (HEAD + len(b"5\r\nhello\r\n3\r\nabc\r\n"), 8)


@pytest.mark.parametrize("body", [
    b"zz\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello!!\r\n0\r\n\r\n",
    b"5" * (SIZE_LINE_LIMIT + 1),
], ids=["size not hex", "chunk longer than its size", "size line too long"])
def test_a_chunked_body_framed_badly_goes_to_the_thread_which_refuses_it(body: bytes):
    assert request_size(CHUNKED + body, LIMIT) == HEAD


def test_chunks_past_the_body_limit_or_framing_past_the_gather_limit_go_to_the_thread():
    assert request_size(CHUNKED + b"100001\r\n" + b"x" * 10, LIMIT) == HEAD, "more than 1 MiB announced"
    tiny = b"1\r\nx\r\n" * (GATHER_LIMIT // 5 + 1)
    assert request_size(CHUNKED + tiny, LIMIT) == HEAD, "framing past the gather limit, each chunk a byte"
    assert request_size(CHUNKED + b"0\r\nX-Long: " + b"y" * (GATHER_LIMIT + 1), LIMIT) == HEAD, "trailer too long"


@pytest.mark.parametrize("field", [b"Content-Length: 5\r\n", b"Expect: something-else\r\n",
                                   b"Transfer-Encoding: gzip\r\n"],
                         ids=["with Content-Length", "an expectation katuna cannot meet", "another encoding too"])
def test_a_chunked_request_the_bytes_cannot_frame_alone_goes_to_the_thread_at_its_head(field: bytes):
    head = POST + field + b"Transfer-Encoding: chunked\r\n\r\n"
    assert request_size(head + b"5\r\nhello\r\n0\r\n\r\n", LIMIT) == len(head)


def test_a_body_within_the_limit_whose_client_waits_for_100_continue_is_gathered_with_its_head():
    head = POST + b"Expect: 100-Continue\r\nContent-Length: 5\r\n\r\n"
    assert waits_to_continue(head) and not waits_to_continue(head[:-2]) and not waits_to_continue(CHUNKED)
    assert request_size(head, LIMIT) == len(head) + 5, "the poller tells the client to continue, and gathers the body"
    over = POST + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1)
    assert request_size(over, LIMIT) == len(over), "a body over the limit is refused at its head, never invited"
    other = POST + b"Expect: something-else\r\nContent-Length: 5\r\n\r\n"
    assert request_size(other, LIMIT) == len(other), "an expectation katuna cannot meet goes to gunicorn's answer"
    chunked = POST + b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert request_size(chunked, LIMIT) is None, "a chunked body too is gathered once the client is told to continue"
    assert request_size(chunked + b"5\r\nhello\r\n0\r\n\r\n", LIMIT) == len(chunked) + 15


def test_a_walk_that_gives_up_says_why_for_the_worker_to_refuse_the_request_unread():
    for body, why in ((b"100001\r\n", "large"), (b"1;" + b"e" * (SIZE_LINE_LIMIT + 1), "framing"),
                      (b"zz\r\n", "framing"), (b"1\r\nxyz", "framing"), (b"1\r\nx\r\n", None)):
        walk = Walk()
        request_size(CHUNKED + body, LIMIT, walk)
        assert walk.refused == why, body
