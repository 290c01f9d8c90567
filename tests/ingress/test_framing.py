"""ingress/framing.py: when is one HTTP/1.1 request whole (pure, byte by byte)."""

from __future__ import annotations

import pytest

from ingress.framing import (
    BAD_FRAMING,
    COMPLETE,
    HEADERS_TOO_LARGE,
    LENGTH_REQUIRED,
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


@pytest.mark.parametrize("head", [
    b"Content-Length: 101\r\n",                                # over the body limit: not buffered (413)
    b"Content-Length: 5\r\nContent-Length: 5\r\n",             # twice: gunicorn refuses it
    b"Content-Length: -1\r\n",
    b"Content-Length: 0x10\r\n",
])
def test_unbufferable_requests_are_handed_over_once_the_headers_are_in(head):
    req = HEAD + head + b"\r\n"
    assert fed_bytewise(req) == (UNBUFFERED, len(req))


@pytest.mark.parametrize(("head", "expected"), [
    (b"Transfer-Encoding: chunked\r\n", LENGTH_REQUIRED),
    (b"transfer-encoding:  Chunked \r\n", LENGTH_REQUIRED),
    (b"Transfer-Encoding: gzip, chunked\r\n", LENGTH_REQUIRED),
    (b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", LENGTH_REQUIRED),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", BAD_FRAMING),  # both: a smuggling classic
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", BAD_FRAMING),
    (b"Transfer-Encoding: gzip\r\n", BAD_FRAMING),                            # not ending in chunked
    (b"Transfer-Encoding: chunked, gzip\r\n", BAD_FRAMING),
    (b"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n", LENGTH_REQUIRED),
])
def test_a_transfer_encoding_is_refused_once_the_headers_are_in(head, expected):
    """Answered by the worker itself (411 / 400), before a byte of the body is read."""
    req = HEAD + head + b"\r\n"
    f = framing()
    for i in range(len(req) - 1):
        assert f.feed(req[i:i + 1]) == NEED_MORE
    assert f.feed(req[-1:]) == expected
    assert not f.expects_continue  # no "100 Continue" for a body that will be refused


def test_a_chunked_body_costs_no_work_past_the_headers():
    """60,000 one-byte chunks are refused as soon as the headers are in: their bytes are never scanned."""
    chunks = b"1\r\na\r\n" * 60_000 + b"0\r\n\r\n"
    req = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    f = RequestFraming(max_header_bytes=1024, max_body_bytes=1 << 20)
    assert f.feed(req + chunks[:10]) == LENGTH_REQUIRED


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


def test_a_body_dribbled_a_byte_at_a_time_is_complete_with_its_last_byte():
    f = RequestFraming(max_header_bytes=1024, max_body_bytes=1 << 20)
    body = b"a" * 60_000
    f.feed(HEAD + b"Content-Length: %d\r\n\r\n" % len(body))
    for i in range(len(body) - 1):
        assert f.feed(body[i:i + 1]) == NEED_MORE
    assert f.feed(body[-1:]) == COMPLETE
