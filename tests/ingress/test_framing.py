"""ingress/framing.py: when is one HTTP/1.1 request whole (pure, byte by byte)."""

from __future__ import annotations

import pytest

from ingress.framing import (
    BAD_BODY,
    BODY_TOO_LARGE,
    COMPLETE,
    HEADERS_TOO_LARGE,
    NEED_MORE,
    UNBUFFERED,
    RequestFraming,
)

HEAD = b"POST /line/events HTTP/1.1\r\nHost: x\r\nX-Line-Signature: s\r\n"


def framing(**kw) -> RequestFraming:
    return RequestFraming(max_header_bytes=kw.get("max_header_bytes", 1024),
                          max_body_bytes=kw.get("max_body_bytes", 100))


def fed_whole(data: bytes, **kw) -> str:
    return framing(**kw).feed(data)


def fed_bytewise(data: bytes, **kw) -> tuple[str, int]:
    """Feed one byte at a time; the state and how many bytes it took to leave NEED_MORE."""
    f = framing(**kw)
    for i in range(len(data)):
        state = f.feed(data[i:i + 1])
        if state != NEED_MORE:
            return state, i + 1
    return NEED_MORE, len(data)


def test_a_body_of_known_length_is_complete_with_its_last_byte():
    req = HEAD + b"Content-Length: 5\r\n\r\nhello"
    assert fed_whole(req[:-1]) == NEED_MORE
    assert fed_whole(req) == COMPLETE
    assert fed_bytewise(req) == (COMPLETE, len(req))


def test_no_length_means_no_body():
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    assert fed_bytewise(req) == (COMPLETE, len(req))
    assert fed_bytewise(b"GET / HTTP/1.1\r\n\r\n") == (COMPLETE, 18)


def test_one_empty_line_before_the_request_line_is_ignored():
    req = b"\r\n" + HEAD + b"Content-Length: 2\r\n\r\nhi"
    assert fed_bytewise(req) == (COMPLETE, len(req))


def test_header_names_are_case_insensitive_and_values_trimmed():
    req = HEAD + b"content-LENGTH:   3  \r\n\r\nabc"
    assert fed_bytewise(req) == (COMPLETE, len(req))


def test_pipelined_bytes_after_the_request_stay_in_data():
    first = HEAD + b"Content-Length: 2\r\n\r\nhi"
    f = framing()
    assert f.feed(first + b"GET / HT") == COMPLETE
    assert bytes(f.data) == first + b"GET / HT"


def test_chunked_is_complete_after_the_last_chunk_and_trailers():
    body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
    req = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + body
    assert fed_bytewise(req) == (COMPLETE, len(req))
    req = HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + b"2\r\nhi\r\n0\r\n\r\n"
    assert fed_whole(req) == COMPLETE


@pytest.mark.parametrize("head", [
    b"Content-Length: 101\r\n",                                # over the body limit: not buffered (413)
    b"Content-Length: 5\r\nContent-Length: 5\r\n",             # twice: gunicorn refuses it
    b"Content-Length: -1\r\n",
    b"Content-Length: 0x10\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",    # both: gunicorn refuses it
    b"Transfer-Encoding: gzip\r\n",                            # no length at all: gunicorn refuses it
])
def test_unbufferable_requests_are_handed_over_once_the_headers_are_in(head):
    req = HEAD + head + b"\r\n"
    assert fed_bytewise(req) == (UNBUFFERED, len(req))


@pytest.mark.parametrize(("body", "expected"), [
    (b"zz\r\n", BAD_BODY),                          # not hex
    (b"0x5\r\nhello\r\n0\r\n\r\n", BAD_BODY),      # Python would read it, gunicorn does not
    (b"1" * 1100, BAD_BODY),                        # a chunk-size line that never ends
    (b"65\r\n", BODY_TOO_LARGE),                    # 101 bytes announced: over the limit
    (b"40\r\n" + b"a" * 64 + b"\r\n40\r\n", BODY_TOO_LARGE),  # 128 bytes in all
])
def test_chunked_bodies_that_cannot_be_buffered_are_refused_before_their_data(body, expected):
    """Answered by the worker itself: nothing is handed over that would make a thread wait."""
    req = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + body
    state, _ = fed_bytewise(req)
    assert state == expected


def test_headers_over_the_limit():
    assert fed_whole(HEAD + b"X-Pad: " + b"a" * 2000, max_header_bytes=1024) == HEADERS_TOO_LARGE
    assert fed_whole(HEAD + b"X-Pad: " + b"a" * 1000 + b"\r\n\r\n", max_header_bytes=1024) == HEADERS_TOO_LARGE
    assert fed_whole(HEAD + b"X-Pad: " + b"a" * 900, max_header_bytes=1024) == NEED_MORE


def test_expect_100_continue_is_noticed_for_a_body_still_to_come():
    f = framing()
    assert f.feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n") == NEED_MORE
    assert f.expects_continue
    assert f.feed(b"hello") == COMPLETE
    f = framing()
    f.feed(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert not f.expects_continue  # HTTP/1.0 clients never get 100 Continue
    f = framing()
    f.feed(HEAD + b"Content-Length: 5\r\n\r\n")
    assert not f.expects_continue


def test_each_byte_is_scanned_about_once():
    """A body dribbled a byte at a time costs linear time (chunk lines are resumed, not re-parsed)."""
    f = RequestFraming(max_header_bytes=1024, max_body_bytes=1 << 20)
    f.feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"1\r\na\r\n" * 20_000
    for i in range(0, len(chunk), 3):
        assert f.feed(chunk[i:i + 3]) == NEED_MORE
    assert f.feed(b"0\r\n\r\n") == COMPLETE
