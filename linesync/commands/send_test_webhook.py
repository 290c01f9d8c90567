"""``linesync send-test-webhook``: sign and post sample LINE follow/unfollow bodies.

The bodies have the shape LINE sends (``destination``, events with ``mode``,
``timestamp`` in ms, ``source``, ``webhookEventId``, ``deliveryContext``...), so
the builders here double as fixtures for tests and benchmarks.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from typing import Any

import click
import requests

from shared.config import load_settings
from shared.signature import sign

DEFAULT_URL = "http://127.0.0.1:8080/line/events"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def line_user_id() -> str:
    """``U`` + 32 lower-case hex digits, like LINE's user ids."""
    return "U" + secrets.token_hex(16)


def webhook_event_id(ts_ms: int | None = None) -> str:
    """A ULID (26 Crockford base32 chars, time first), like LINE's ``webhookEventId``."""
    ts_ms = int(time.time() * 1000) if ts_ms is None else ts_ms
    n = (ts_ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in reversed(range(26)))


def user_event(type_: str, user_id: str, ts_ms: int, **fields: Any) -> dict[str, Any]:
    """A LINE event from a user, as LINE sends it; ``fields`` add or override keys."""
    return {
        "type": type_,
        "mode": "active",
        "timestamp": ts_ms,
        "source": {"type": "user", "userId": user_id},
        "webhookEventId": webhook_event_id(ts_ms),
        "deliveryContext": {"isRedelivery": False},
        **fields,
    }


def follow_event(user_id: str, ts_ms: int, *, unblocked: bool = False) -> dict[str, Any]:
    return user_event("follow", user_id, ts_ms, replyToken=uuid.uuid4().hex, follow={"isUnblocked": unblocked})


def unfollow_event(user_id: str, ts_ms: int) -> dict[str, Any]:
    return user_event("unfollow", user_id, ts_ms)


def webhook_body(events: list[dict[str, Any]], destination: str | None = None) -> bytes:
    """The envelope as LINE sends it: compact JSON, UTF-8."""
    envelope = {"destination": destination or line_user_id(), "events": events}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sample_bodies(count: int, user_ids: tuple[str, ...], kind: str, *, now_ms: int) -> list[tuple[str, bytes]]:
    """``count`` bodies, each with one event per user (a fresh random user if none given).

    ``kind`` is follow, unfollow or alternate (follow, unfollow, follow, ...).
    Returns (event type, body) pairs; timestamps increase by 1 ms per body.
    """
    destination = line_user_id()
    out = []
    for i in range(count):
        etype = kind if kind != "alternate" else ("follow" if i % 2 == 0 else "unfollow")
        users = user_ids or (line_user_id(),)
        ts = now_ms + i
        make = follow_event if etype == "follow" else unfollow_event
        out.append((etype, webhook_body([make(u, ts) for u in users], destination)))
    return out


def _channel_target(settings, name: str | None, url: str):
    """(the channel's settings, its webhook URL) for --channel (or the only channel of the file)."""
    chans = settings.channels()
    if name is None:
        if len(chans) > 1:
            raise click.UsageError("several channels: say which with --channel NAME "
                                   f"({', '.join(c.name for c in chans)})")
        name = chans[0].name
    ch = settings.channel(name)
    if ch is None:
        raise click.UsageError(f"no channel {name!r} (channels: {', '.join(c.name for c in chans)})")
    if url == DEFAULT_URL and name != "default":
        url = f"{DEFAULT_URL}/{name}"
    return ch.settings, url


@click.command("send-test-webhook")
@click.option("--url", default=DEFAULT_URL, show_default=True, help="The ingress webhook URL.")
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True, help="Bodies to send.")
@click.option("--user-id", "user_ids", multiple=True, metavar="U…",
              help="LINE user id for the events (repeatable: one event per user in each body). "
                   "Default: a new random user per body.")
@click.option("--event", "kind", type=click.Choice(["follow", "unfollow", "alternate"]),
              default="alternate", show_default=True, help="Event type of each body.")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds to wait per request.")
@click.option("--channel", metavar="NAME", help="With LINESYNC_CHANNELS_FILE: sign with this channel's secret "
              "and post to <url>/<NAME> (needed when there are several).")
def send_test_webhook(url: str, count: int, user_ids: tuple[str, ...], kind: str, timeout: float,
                      channel: str | None = None) -> None:
    """Sign sample follow/unfollow bodies with LINE_CHANNEL_SECRET and post them.

    Prints each response's status code; exits non-zero if any was not 200.
    """
    settings = load_settings()
    if settings.channel_table or channel:
        settings, url = _channel_target(settings, channel, url)
    settings.require("line_channel_secret")
    failures = 0
    with requests.Session() as http:
        for n, (etype, body) in enumerate(sample_bodies(count, user_ids, kind, now_ms=int(time.time() * 1000)), 1):
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "X-Line-Signature": sign(settings.line_channel_secret, body),
                "User-Agent": "LineBotWebhook/2.0",
            }
            try:
                resp = http.post(url, data=body, headers=headers, timeout=timeout)
            except requests.RequestException as e:
                click.echo(f"{n}/{count} {etype}: no answer ({type(e).__name__})")
                failures += 1
                continue
            click.echo(f"{n}/{count} {etype}: {resp.status_code}")
            failures += resp.status_code != 200
    if failures:
        raise click.ClickException(f"{failures} of {count} webhook(s) were not answered 200")
