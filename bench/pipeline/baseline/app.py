"""The obvious design, web half: the LINE SDK's WebhookParser in a Flask view,
one Celery task per follow/unfollow event. (Baseline for bench/pipeline/run.py.)

    gunicorn -c python:ingress.gunicorn_conf --pythonpath bench/pipeline/baseline "app:create_app()"

Needs LINE_CHANNEL_SECRET and BASELINE_BROKER_URL (see tasks.py).
"""

from __future__ import annotations

import os

from flask import Flask, abort, request
from linebot.v3 import WebhookParser
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.webhooks import FollowEvent, UnfollowEvent

from tasks import track_subscription


def create_app() -> Flask:
    app = Flask(__name__)
    parser = WebhookParser(os.environ["LINE_CHANNEL_SECRET"])

    @app.post("/line/events")
    def line_events():
        signature = request.headers.get("X-Line-Signature", "")
        body = request.get_data(as_text=True)
        try:
            events = parser.parse(body, signature)
        except InvalidSignatureError:
            abort(401)
        for event in events:
            if isinstance(event, FollowEvent):
                track_subscription.delay(event.source.user_id, "subscribed")
            elif isinstance(event, UnfollowEvent):
                track_subscription.delay(event.source.user_id, "unsubscribed")
        return "OK"

    return app
