"""The obvious design, worker half: one Celery task = one Braze /users/track POST
with one attributes object (docs/reference.md, "What reaches Braze"). (Baseline for bench/pipeline/run.py.)

    celery -A tasks worker        # with bench/pipeline/baseline on PYTHONPATH

Environment: BASELINE_BROKER_URL, BRAZE_REST_ENDPOINT, BRAZE_API_KEY,
BRAZE_SUBSCRIPTION_GROUP_ID. Celery defaults otherwise (early ack, prefetch 4).
Each pool process keeps one requests.Session, so connections are reused: the
baseline is not handicapped by a TCP handshake per task.
"""

from __future__ import annotations

import os

import requests
from celery import Celery

app = Celery("baseline", broker=os.environ["BASELINE_BROKER_URL"])
app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True)

ENDPOINT = os.environ.get("BRAZE_REST_ENDPOINT", "").rstrip("/")
API_KEY = os.environ.get("BRAZE_API_KEY", "")
GROUP = os.environ.get("BRAZE_SUBSCRIPTION_GROUP_ID", "")

session = requests.Session()


@app.task(autoretry_for=(requests.RequestException,), retry_backoff=True, max_retries=5)
def track_subscription(user_id: str, state: str) -> None:
    obj = {
        "user_alias": {"alias_name": user_id, "alias_label": "line_id"},
        "_update_existing_only": False,
        "native_line_id": user_id,
        "subscription_groups": [{"subscription_group_id": GROUP, "subscription_state": state}],
    }
    resp = session.post(f"{ENDPOINT}/users/track", json={"attributes": [obj]},
                        headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    resp.raise_for_status()
