"""Where one HTTP/1.1 request ends, told from the bytes received so far.

The ingress's gunicorn worker (ingress/buffered_worker.py) reads requests in
its event loop and hands a request to a thread only once all of it is in, so a
client that sends its headers and then dribbles (or stalls) holds no thread.
:class:`RequestFraming` is that loop's only HTTP knowledge: fed the bytes as
they arrive, it says when the request is complete. It does not validate the
request: gunicorn's own parser does that, in the thread, on the same bytes.
What it must never do is call a request complete before gunicorn would (the
thread would then wait on the socket). Where a request cannot be buffered it
says so, with what to do:

- ``UNBUFFERED``: hand it over as it is, once its headers are in. Either the
  declared ``Content-Length`` is over the limit (the application answers 413
  without reading the body) or the headers frame the body in a way gunicorn
  refuses (two lengths, a length with Transfer-Encoding, a Transfer-Encoding
  not ending in chunked: gunicorn answers 400 before reading a body byte).
- ``BODY_TOO_LARGE`` / ``BAD_BODY``: a chunked body over the limit, or with a
  malformed chunk line; the worker answers 413 / 400 itself, without a thread
  ever waiting for the rest.
- ``HEADERS_TOO_LARGE``: the worker answers 431.

Pure: no sockets, no clock. Incremental: each byte is scanned about once.
"""

from __future__ import annotations

# States returned by RequestFraming.feed.
NEED_MORE = "need_more"                  # keep reading
COMPLETE = "complete"                    # the whole request is in `data` (maybe more behind it)
UNBUFFERED = "unbuffered"                # hand it over once its headers are in: nothing more will be read
                                         # (Content-Length over the limit: 413; framing gunicorn refuses: 400)
HEADERS_TOO_LARGE = "headers_too_large"  # no end of headers within the limit: answer 431 and close
BODY_TOO_LARGE = "body_too_large"        # a chunked body over the limit: answer 413 and close
BAD_BODY = "bad_body"                    # a malformed chunked body: answer 400 and close

# A chunk-size line (hex digits and extensions) longer than this is not a chunk-size line.
MAX_CHUNK_LINE = 1024

_CRLF = b"\r\n"
_HEADERS_END = b"\r\n\r\n"
_HEX = b"0123456789abcdefABCDEF"


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
        self._length: int | None = None  # Content-Length, when the body has one
        self._chunked = False
        self._pos = 0              # chunked: offset of the next chunk-size (or trailer) line
        self._body = 0             # chunked: body bytes announced so far
        self._trailers = False     # chunked: past the last chunk, reading trailer lines

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
        if self._chunked:
            self.state = self._scan_chunks()
        elif len(self.data) >= self._headers_end + (self._length or 0):
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
            # gunicorn accepts a Transfer-Encoding that ends in chunked (and only then), never with Content-Length.
            if codings[-1] != b"chunked" or lengths:
                self.state = UNBUFFERED
                return
            self._chunked = True
            self._pos = self._headers_end
        elif lengths:
            if len(lengths) > 1 or not lengths[0].isdigit():
                self.state = UNBUFFERED
                return
            self._length = int(lengths[0])
            if self._length > self.max_body_bytes:
                self.state = UNBUFFERED
                return
        # (No length and not chunked: a request without a body, for gunicorn as for HTTP.)
        body_expected = self._chunked or bool(self._length)
        self.expects_continue = (body_expected and expect == b"100-continue"
                                 and request_line.rstrip().endswith(b"HTTP/1.1"))

    def _scan_chunks(self) -> str:
        data = self.data
        while True:
            eol = data.find(_CRLF, self._pos)
            if eol < 0:
                return BAD_BODY if len(data) - self._pos > MAX_CHUNK_LINE else NEED_MORE
            line = bytes(data[self._pos:eol])
            if self._trailers:
                if not line:
                    return COMPLETE
                if eol - self._headers_end > self.max_body_bytes + self.max_header_bytes:
                    return BAD_BODY
                self._pos = eol + 2
                continue
            if len(line) > MAX_CHUNK_LINE:
                return BAD_BODY
            size_text = line.split(b";", 1)[0].rstrip(b" \t")
            if not size_text or size_text.translate(None, _HEX):
                return BAD_BODY  # not hex digits: gunicorn refuses it too
            size = int(size_text, 16)
            if size == 0:
                self._trailers = True
                self._pos = eol + 2
                continue
            self._body += size
            if self._body > self.max_body_bytes:
                return BODY_TOO_LARGE
            end = eol + 2 + size + 2
            if len(data) < end:
                return NEED_MORE
            self._pos = end
