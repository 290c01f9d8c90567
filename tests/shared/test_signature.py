"""X-Line-Signature: base64(HMAC-SHA256(channel secret, raw body)), compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from shared.signature import sign, verify

# The public test vector of LINE's SDK (line-bot-sdk-python, tests/test_webhook.py).
SDK_SECRET = "channel_secret"
SDK_BODY = b"bodybodybodybody"
SDK_SIGNATURE = "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="


def test_line_sdk_vector():
    assert sign(SDK_SECRET, SDK_BODY) == SDK_SIGNATURE
    assert verify(SDK_SECRET, SDK_BODY, SDK_SIGNATURE)


def test_bytes_secret_is_the_same_as_str():
    assert verify(SDK_SECRET.encode(), SDK_BODY, SDK_SIGNATURE)


def test_matches_a_plain_hmac_over_raw_bytes():
    body = '{"x":"é"}\n'.encode() + b"\xff"
    expected = base64.b64encode(hmac.new(b"k", body, hashlib.sha256).digest()).decode()
    assert sign("k", body) == expected


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        SDK_SIGNATURE[:-2],
        SDK_SIGNATURE.lower(),
        SDK_SIGNATURE + "A",
        "é" * 44,  # not ASCII
        sign("other", SDK_BODY),
    ],
)
def test_wrong_or_missing_signature(signature):
    assert not verify(SDK_SECRET, SDK_BODY, signature)


def test_any_change_to_the_body_fails():
    assert not verify(SDK_SECRET, SDK_BODY + b" ", SDK_SIGNATURE)
    assert not verify(SDK_SECRET, SDK_BODY[:-1], SDK_SIGNATURE)


def test_surrounding_whitespace_in_the_header_is_tolerated():
    assert verify(SDK_SECRET, SDK_BODY, f" {SDK_SIGNATURE} ")


def test_agrees_with_the_line_sdk_when_installed():
    parser = pytest.importorskip("linebot.v3.webhook").WebhookParser
    body = b'{"destination":"U1","events":[]}'
    assert parser(SDK_SECRET).signature_validator.validate(body.decode(), sign(SDK_SECRET, body))
