import json

from shared import identity, links
from shared.events import parse_body
from workers.account_link import AccountLinkHook

U1 = "U" + "c" * 32


def account_link(result="ok", nonce="n-1", eid="E1"):
    ev = {"type": "accountLink", "timestamp": 5, "webhookEventId": eid, "mode": "active",
          "source": {"type": "user", "userId": U1}, "link": {"result": result, "nonce": nonce}}
    return parse_body(json.dumps({"destination": "Ubot", "events": [ev]}).encode(), "1-0")


def test_known_nonce_links_and_queues_identify_once(r, keys, settings):
    identity.register_nonce(r, keys, "n-1", "crm-9")
    hook = AccountLinkHook(r, keys, settings)
    hook(account_link())
    hook(account_link())  # LINE redelivery
    assert links.line_user(r, keys, "crm-9") == U1
    assert r.xlen(keys.identity) == 1
    assert r.hget(keys.stats, "account_link_ok") == b"1"
    assert not r.exists(keys.nonce("n-1"))


def test_failed_results_and_unknown_nonces_are_counted(r, keys, settings):
    hook = AccountLinkHook(r, keys, settings)
    hook(account_link(result="failed", eid="E2"))
    hook(account_link(nonce="unknown", eid="E3"))
    assert r.hget(keys.stats, "account_link_failed") == b"1"
    assert r.hget(keys.stats, "account_link_unknown_nonce") == b"1"
    assert r.xlen(keys.identity) == 0
