"""The identity items' codec (shared/identity.py): queued items and their retry state, on a real Redis."""

from shared import identity
from shared.identity import Request, RetryState

U1 = "U" + "a" * 32


def test_a_queued_item_reads_back_as_it_was_queued(r, keys):
    identity.enqueue(r, keys, identity.MERGE, "crm-1", U1)
    identity.enqueue(r, keys, identity.IDENTIFY, "crm-\u00e9", U1)
    got = [identity.request(f) for _, f in r.xrange(keys.identity)]
    assert got == [Request("merge", "crm-1", U1), Request("identify", "crm-\u00e9", U1)]
    assert all(g.known for g in got)
    assert got[0].item() == {"identifier_to_merge": {"user_alias": {"alias_name": U1, "alias_label": "line_id"}},
                             "identifier_to_keep": {"external_id": "crm-1"}}
    assert identity.request(got[1].fields()) == got[1]          # a dead letter's payload: the same fields


def test_an_entry_missing_fields_or_of_an_unknown_kind_still_reads(r, keys):
    r.xadd(keys.identity, {"kind": "bogus", "line_user_id": U1})
    (_, f), = r.xrange(keys.identity)
    req = identity.request(f)
    assert req == Request("bogus", "", U1) and not req.known


def test_retry_state_is_written_read_forgotten_and_released_in_one_place(r, keys):
    ids = [r.xadd(keys.identity, Request("identify", f"crm-{i}", U1).fields()) for i in range(3)]
    assert identity.retry_states(r, keys, ids) == {i: RetryState() for i in ids}
    identity.record_retries(r, keys, {ids[0]: RetryState(2, 9000), ids[1]: RetryState(1, 0)})
    assert identity.retry_states(r, keys, ids) == {ids[0]: RetryState(2, 9000), ids[1]: RetryState(1, 0),
                                                   ids[2]: RetryState()}
    assert identity.sizes(r, keys) == {"queued": 3, "held": 0, "retrying": 1}
    r.hset(keys.identity_attempts, ids[2], 4)                 # an attempt count of an older release
    assert identity.retry_states(r, keys, ids[2:]) == {ids[2]: RetryState(4, 0)}
    assert identity.release_retries(r, keys) == 1             # Braze answers again: all due now, attempts kept
    assert identity.retry_states(r, keys, ids[:1]) == {ids[0]: RetryState(2, 0)}
    p = r.pipeline(transaction=True)
    identity.forget(p, keys, ids)
    p.execute()
    assert r.hlen(keys.identity_attempts) == 0 and r.zcard(keys.identity_retry) == 0
