import dataclasses
import json

import pytest

from shared import identity, links
from shared.events import parse_body
from workers import account_link as account_link_module
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


def test_a_nonce_links_one_event_only_even_when_two_race(r, keys, settings, monkeypatch):
    # Two accountLink events carrying the same nonce, for two LINE users, handled at the same time.
    identity.register_nonce(r, keys, "n-1", "crm-9")
    hook = AccountLinkHook(r, keys, settings)
    other = dataclasses.replace(account_link(eid="E-other")[0], user_id="U" + "d" * 32)
    real_link = account_link_module.link
    outcomes = []

    def link_while_the_other_runs(*a, **kw):
        if not outcomes:
            outcomes.append(hook.handle(other))  # the other event, between our read and our link
        return real_link(*a, **kw)

    monkeypatch.setattr(account_link_module, "link", link_while_the_other_runs)
    assert hook.handle(account_link()[0]) == "account_link_ok"
    assert outcomes == ["account_link_unknown_nonce"]
    assert links.line_user(r, keys, "crm-9") == U1
    assert r.xlen(keys.identity) == 1


def test_an_event_replayed_after_a_crash_still_finds_its_nonce(r, keys, settings, monkeypatch):
    identity.register_nonce(r, keys, "n-1", "crm-9")
    hook = AccountLinkHook(r, keys, settings)

    def crash(*a, **kw):
        raise ConnectionError("worker killed")

    monkeypatch.setattr(account_link_module, "link", crash)
    with pytest.raises(ConnectionError):
        hook(account_link())
    monkeypatch.undo()
    hook(account_link())  # the batch is redelivered
    assert links.line_user(r, keys, "crm-9") == U1
    assert r.xlen(keys.identity) == 1
    assert hook.handle(account_link(eid="E-other")[0]) == "account_link_unknown_nonce"  # single use
    assert not r.keys("*nonce*")  # nothing left behind once the event is done
