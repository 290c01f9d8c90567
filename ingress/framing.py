"""Where one HTTP/1.1 request ends, told from the bytes received so far.

The ingress's gunicorn worker (ingress/buffered_worker.py) reads requests in
its event loop and hands a request to a thread only once all of it is in, so a
client that sends its headers and then dribbles (or stalls) holds no thread.
:class:`RequestFraming` is that loop's only HTTP knowledge: fed the bytes as
they arrive, it says when the request is complete. It does not validate the
request: gunicorn's own parser does that, in the thread, on the same bytes.
What it must never do is call a request complete before gunicorn would (the
thread would then wait on the socket).

A body is framed by ``Content-Length`` only. LINE always sends one, and so do
the admin clients; a ``Transfer-Encoding`` (chunked) body is refused as soon
as the headers are in, before a byte of it is read. Decoding chunked bodies
cost work out of proportion to their size (gunicorn's chunked reader copies
what is left of a buffered body once per chunk: quadratic), and chunk-line
extensions made a small body cost a lot of buffer. So the work per request
is the scan of its bytes, once, and at most ``max_header_bytes`` plus
``max_body_bytes`` of them are ever kept.

Where a request cannot be buffered the verdict says what to do:

- ``UNBUFFERED``: hand it over as it is, once its headers are in. Either the
  declared ``Content-Length`` is over the limit (the application answers 413
  without reading the body) or it is not one length gunicorn accepts (two of
  them, not digits: gunicorn answers 400 before reading a body byte).
- ``LENGTH_REQUIRED``: a chunked body; the worker answers 411 and closes.
- ``BAD_FRAMING``: a ``Transfer-Encoding`` that does not end in chunked, or
  one with a ``Content-Length`` too (ambiguous, a request-smuggling classic);
  the worker answers 400 and closes.
- ``HEADERS_TOO_LARGE``: the worker answers 431.

Pure: no sockets, no clock. Incremental: each byte is scanned about once.
"""

from __future__ import annotations

# States returned by RequestFraming.feed.
NEED_MORE = "need_more"                  # keep reading
COMPLETE = "complete"                    # the whole request is in `data` (maybe more behind it)
UNBUFFERED = "unbuffered"                # hand it over once its headers are in: nothing more will be read
                                         # (Content-Length over the limit: 413; lengths gunicorn refuses: 400)
HEADERS_TOO_LARGE = "headers_too_large"  # no end of headers within the limit: answer 431 and close
LENGTH_REQUIRED = "length_required"      # a chunked body: answer 411 and close
BAD_FRAMING = "bad_framing"              # a Transfer-Encoding not ending in chunked, or with a Content-Length:
                                         # answer 400 and close

# What a client refused with 411 or 400 is told (by the worker, or by the webhook under another server).
LENGTH_REQUIRED_DETAIL = "send the body with a Content-Length; chunked bodies are not accepted"
BAD_FRAMING_DETAIL = "a body is framed by one Content-Length, never by Transfer-Encoding"

_CRLF = b"\r\n"
_HEADERS_END = b"\r\n\r\n"


class RequestFraming:
    """Feed it a request's bytes as they arrive; it tells when the request is whole.

    ``data`` holds every byte fed (the request and anything pipelined after it).
    ``expects_continue`` is true once the headers are in and the client waits
    for ``100 Continue`` before sending its body.
    """

    def __init__(self, *, max_header_bytes: int, max_body_bytes: int):
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.data = bytearray()
        self.state = NEED_MORE
        self.expects_continue = False
        self._headers_end = -1     # offset of the first body byte, once the headers are in
        self._length = 0           # Content-Length (0: no body)

    def feed(self, chunk: bytes) -> str:
        """Add bytes; return the state (NEED_MORE until the request is complete or handed over)."""
        if self.state != NEED_MORE:
            self.data += chunk
            return self.state
        scan_from = max(0, len(self.data) - 3)
        self.data += chunk
        if self._headers_end < 0:
            end = self.data.find(_HEADERS_END, scan_from)
            if end < 0:
                if len(self.data) > self.max_header_bytes:
                    self.state = HEADERS_TOO_LARGE
                return self.state
            if end + 4 > self.max_header_bytes:
                self.state = HEADERS_TOO_LARGE
                return self.state
            self._headers_end = end + 4
            self._read_headers(bytes(self.data[:end]))
            if self.state != NEED_MORE:
                return self.state
        if len(self.data) >= self._headers_end + self._length:
            self.state = COMPLETE
        return self.state

    def _read_headers(self, head: bytes) -> None:
        if head.startswith(_CRLF):  # one empty line before the request line is ignored (RFC 9112 2.2)
            head = head[2:]
        lines = head.split(_CRLF)
        request_line = lines[0]
        lengths: list[bytes] = []
        codings: list[bytes] = []
        expect = b""
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                continue  # gunicorn refuses it; nothing here depends on it
            name = name.strip().lower()
            if name == b"content-length":
                lengths.append(value.strip())
            elif name == b"transfer-encoding":
                codings += [c.strip().lower() for c in value.split(b",")]
            elif name == b"expect":
                expect = value.strip().lower()
        if codings:
            # RFC 9112 6.1: a coding list not ending in chunked, or with a Content-Length: 400.
            self.state = LENGTH_REQUIRED if codings[-1] == b"chunked" and not lengths else BAD_FRAMING
            return
        if lengths:
            if len(lengths) > 1 or not lengths[0].isdigit():
                self.state = UNBUFFERED
                return
            self._length = int(lengths[0])
            if self._length > self.max_body_bytes:
                self.state = UNBUFFERED
                return
        # (No length: a request without a body, for gunicorn as for HTTP.)
        self.expects_continue = (self._length > 0 and expect == b"100-continue"
                                 and request_line.rstrip().endswith(b"HTTP/1.1"))
