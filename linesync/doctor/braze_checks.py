"""Braze: the REST endpoint answers and takes the API key for /users/track; the state mode in force
(BRAZE_STATE_MODE) and, where it writes one, the subscription group id looks right.

The key is tried with a /users/track request that changes no profile: one
attributes object for an external_id that cannot exist, with
``_update_existing_only: true`` and no attribute. Braze documents that flag as
"update existing profiles only, never create one", so nothing is written and
no data point is spent, while the request needs exactly the ``users.track``
permission the workers use. (An empty ``{"attributes": []}`` is not used: the
Braze sandbox, like a strict reading of Braze's API, rejects a request with no
objects as a 400, which says nothing about the key.)
"""

from __future__ import annotations

import re
import uuid

from linesync.doctor.http import Http, HttpFailure
from shared import payload
from shared.check import Check, failed, passed, skipped

TRACK_PATH = "/users/track"
# Braze ids (subscription groups among them) are UUIDs.
BRAZE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
# Probe ids start with this, so they are recognisable in Braze's logs.
PROBE_PREFIX = "linesync-doctor-probe-"

KEY_HINT = ("Braze dashboard > Settings > APIs and Identifiers: a REST API key with users.track "
            "(a key only works on its own instance's REST endpoint)")


GROUP_HINT = "copy the id of your LINE subscription group (Braze > Audience > Subscriptions)"
NO_CHANNEL_HINT = ("; a workspace without Braze's LINE channel has no LINE subscription group: set "
                   "BRAZE_STATE_MODE=attributes (docs/braze-without-line-channel.md)")


def state_mode(mode: str, group_id: str | None) -> Check:
    """Which mode is in force, in words: where the follow state goes in Braze."""
    detail = payload.describe(mode, group_id)
    if mode == payload.ATTRIBUTES and group_id:
        detail += " (BRAZE_SUBSCRIPTION_GROUP_ID is set but not used in this mode; 'both' writes it too)"
    return passed("braze.state_mode", detail)


def subscription_group(group_id: str | None, mode: str = payload.SUBSCRIPTION_GROUP) -> Check:
    name = "braze.subscription_group"
    if mode == payload.ATTRIBUTES:
        return skipped(name, "not used: BRAZE_STATE_MODE=attributes writes custom attributes only")
    if not group_id:
        return failed(name, f"BRAZE_SUBSCRIPTION_GROUP_ID is not set (BRAZE_STATE_MODE={mode} writes it)",
                      GROUP_HINT + NO_CHANNEL_HINT)
    if not BRAZE_ID.match(group_id):
        return failed(name, "BRAZE_SUBSCRIPTION_GROUP_ID does not look like a Braze id (a UUID such as "
                            "0b1e0b1e-aaaa-4bbb-8ccc-0123456789ab)", GROUP_HINT)
    return passed(name, f"subscription group {group_id}")


def probe_payload(external_id: str | None = None) -> dict:
    """A /users/track body that changes no profile (see the module docstring)."""
    return {"attributes": [{"external_id": external_id or PROBE_PREFIX + uuid.uuid4().hex,
                            "_update_existing_only": True}]}


def _message(reply_json: object, text: str) -> str:
    if isinstance(reply_json, dict) and reply_json.get("message"):
        return str(reply_json["message"])[:200]
    return text.strip()[:200] or "(empty body)"


def api_key(http: Http, endpoint: str | None, key: str | None, *, external_id: str | None = None) -> Check:
    name = "braze.api_key"
    if not endpoint:
        return failed(name, "BRAZE_REST_ENDPOINT is not set",
                      "set it to your instance's REST endpoint, e.g. https://rest.iad-01.braze.com")
    if not key:
        return failed(name, "BRAZE_API_KEY is not set", f"set it: {KEY_HINT}")
    url = endpoint.rstrip("/") + TRACK_PATH
    try:
        reply = http.request("POST", url, headers={"Authorization": f"Bearer {key}"},
                             json=probe_payload(external_id))
    except HttpFailure as e:
        return failed(name, f"{url}: {e}", "check BRAZE_REST_ENDPOINT and that this host can reach it (DNS, "
                                           "firewall, proxy)")
    msg = _message(reply.json(), reply.text)
    s = reply.status
    if s == 401:
        return failed(name, f"Braze refused BRAZE_API_KEY (401: {msg})", f"check the key: {KEY_HINT}")
    if s == 403:
        return failed(name, f"BRAZE_API_KEY may not call {TRACK_PATH} (403: {msg})",
                      "give the key the users.track permission (and users.identify, users.merge for linking)")
    if s == 404:
        return failed(name, f"{url} answered 404: BRAZE_REST_ENDPOINT is not a Braze REST endpoint",
                      "use your instance's REST endpoint, e.g. https://rest.iad-01.braze.com (no path)")
    if s == 429:
        return passed(name, "key accepted (Braze is rate limiting right now)")
    if s >= 500:
        return failed(name, f"Braze answered {s} ({msg})",
                      "Braze is failing: check status.braze.com; delivery retries by itself")
    if 200 <= s < 300 or s == 400:  # Braze checks the key first: a 400 is about the probe, not the key
        return passed(name, f"{endpoint} accepted the key for {TRACK_PATH} ({s})")
    return failed(name, f"{url} answered {s} ({msg})", "check BRAZE_REST_ENDPOINT and BRAZE_API_KEY")
