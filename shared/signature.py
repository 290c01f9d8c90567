"""LINE webhook signatures: base64(HMAC-SHA256(channel secret, raw body))."""

from __future__ import annotations

import base64
import hmac


def sign(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.digest(key, body, "sha256")).decode("ascii")


def verify(secret: str | bytes, body: bytes, signature: str | None) -> bool:
    """Constant-time check of ``signature`` (the X-Line-Signature header) over ``body``."""
    if not signature:
        return False
    try:
        given = signature.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"), given)
