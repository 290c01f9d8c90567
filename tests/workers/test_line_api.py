"""The LINE client against the LINE sandbox over real HTTP, and its pure error mapping."""

from __future__ import annotations

import pytest

from sandboxes.line import LineSandbox, follower_id
from shared.embedded_redis import free_port
from shared.errors import LineApiError, LineExpiredToken, LineForbidden, LineRetryable
from workers import line_api
from workers.line_api import LineClient, classify, error_text

TOKEN = "line-test-token-secret"


@pytest.fixture
def sandbox():
    sb = LineSandbox(access_token=TOKEN, followers=2500).start()
    yield sb
    sb.stop()


@pytest.fixture
def line(sandbox):
    return LineClient(sandbox.url, TOKEN)


def test_friends_estimate_is_yesterdays_count_in_japan(line, sandbox, monkeypatch):
    # 2026-03-01 16:00 UTC is 03-02 01:00 in Japan: LINE's figure for 03-01 is the newest.
    asked = []
    real = line._get
    monkeypatch.setattr(line, "_get", lambda path, params=None: asked.append(params) or real(path, params))
    assert line.friends_estimate(1772380800.0) == 2500
    assert asked == [{"date": "20260301"}]


def test_friends_estimate_none_until_line_has_the_day(line, monkeypatch):
    class NotReady:
        status_code = 200
        headers: dict = {}

        def json(self):
            return {"status": "unready"}

    monkeypatch.setattr(line, "_get", lambda path, params=None: NotReady())
    assert line.friends_estimate(1772380800.0) is None


def test_pages_through_followers(line):
    ids, nxt = line.followers_ids()
    assert ids == [follower_id(i) for i in range(1000)] and nxt
    ids2, nxt2 = line.followers_ids(nxt)
    assert ids2[0] == follower_id(1000) and nxt2
    ids3, nxt3 = line.followers_ids(nxt2, limit=1000)
    assert len(ids3) == 500 and nxt3 is None


def test_limit_is_sent(line):
    ids, nxt = line.followers_ids(limit=7)
    assert len(ids) == 7 and nxt


def test_bot_info(line):
    info = line.bot_info()
    assert info["basicId"] == "@abc" and info["userId"].startswith("U")


def test_forbidden_is_operator_facing_and_names_the_request(line, sandbox):
    sandbox.set_faults(forbidden=True)
    with pytest.raises(LineForbidden) as e:
        line.followers_ids()
    text = str(e.value)
    assert e.value.status == 403 and "verified or premium" in text
    assert "Access to this API is not available" in text  # LINE's own message
    assert e.value.request_id and e.value.request_id in text
    assert TOKEN not in text


def test_expired_start_token(line):
    with pytest.raises(LineExpiredToken) as e:
        line.followers_ids("not-a-valid-token")
    assert e.value.status == 400 and "Invalid start param" in str(e.value)


def test_sandbox_token_ttl_expiry_is_expired_token():
    now = [1_000_000.0]
    with LineSandbox(access_token=TOKEN, followers=1500, token_ttl_seconds=60, clock=lambda: now[0]) as sb:
        client = LineClient(sb.url, TOKEN)
        _, nxt = client.followers_ids()
        now[0] += 61
        with pytest.raises(LineExpiredToken):
            client.followers_ids(nxt)


def test_5xx_is_retryable(line, sandbox):
    sandbox.set_faults(fail_pages={0: 1})
    with pytest.raises(LineRetryable) as e:
        line.followers_ids()
    assert e.value.status == 500
    assert line.followers_ids()[0]  # the next try works


def test_wrong_token_is_a_plain_api_error(sandbox):
    client = LineClient(sandbox.url, "wrong-token")
    with pytest.raises(LineApiError) as e:
        client.followers_ids()
    assert type(e.value) is LineApiError and e.value.status == 401
    assert "LINE_CHANNEL_ACCESS_TOKEN" in str(e.value) and "wrong-token" not in str(e.value)


def test_connection_refused_is_retryable():
    client = LineClient(f"http://127.0.0.1:{free_port()}", TOKEN)
    with pytest.raises(LineRetryable) as e:
        client.followers_ids()
    assert TOKEN not in str(e.value)


def test_read_timeout_is_retryable(sandbox):
    sandbox.set_faults(latency_ms=500)
    client = LineClient(sandbox.url, TOKEN, read_timeout=0.1)
    with pytest.raises(LineRetryable, match="timed out"):
        client.followers_ids()


@pytest.mark.parametrize("status,body,kind", [
    (403, '{"message":"Access to this API is not available for your account"}', LineForbidden),
    (400, '{"message":"Invalid start param"}', LineExpiredToken),
    (400, '{"message":"Invalid limit param"}', LineApiError),
    (429, '{"message":"The API rate limit has been exceeded. Try again later."}', LineRetryable),
    (500, "", LineRetryable),
    (503, "<html>down</html>", LineRetryable),
    (404, '{"message":"Not found"}', LineApiError),
])
def test_classify(status, body, kind):
    err = classify("/v2/bot/followers/ids", status, body, "req-1")
    assert type(err) is kind and err.status == status and "req-1" in str(err)


def test_error_text_includes_details():
    body = '{"message":"The request body has 1 error(s)","details":[{"message":"must be <= 1000","property":"limit"}]}'
    assert error_text(body) == "The request body has 1 error(s) (limit: must be <= 1000)"
    assert error_text("") == "(empty body)"
    assert error_text("plain") == "plain"


def test_one_session_per_process(sandbox):
    assert line_api.shared_session() is line_api.shared_session()
    a, b = LineClient(sandbox.url, TOKEN), LineClient(sandbox.url, "other")
    assert a.session is b.session
    assert "Authorization" not in a.session.headers  # the token stays with its client
    assert TOKEN not in repr(a)


def test_each_thread_has_its_own_session(sandbox):
    """requests.Session is not thread-safe: a client used from several threads (task threads,
    the resync's calls) never lets two of them share one."""
    import threading

    client = LineClient(sandbox.url, TOKEN)
    seen: dict[str, object] = {}
    pages: dict[str, int] = {}
    start = threading.Barrier(4)

    def work(name: str) -> None:
        start.wait()
        seen[name] = client.session
        pages[name] = len(client.followers_ids(limit=50)[0])

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen.values()}) == 4
    assert client.session not in seen.values()  # this thread's is its own too
    assert pages == {f"t{i}": 50 for i in range(4)}


def test_a_given_session_is_used_as_is(sandbox):
    import requests

    mine = requests.Session()
    assert LineClient(sandbox.url, TOKEN, session=mine).session is mine
