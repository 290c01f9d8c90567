from workers.braze import AuthFailure, BadRequest, Delivered, RateLimited, Retryable, classify

NOW = 1_700_000_000.0


def test_success_without_errors():
    assert classify(201, {}, '{"message":"success","attributes_processed":2}', NOW) == Delivered([], None)


def test_success_with_named_errors():
    body = '{"message":"success","errors":[{"type":"bad alias","input_array":"attributes","index":1}]}'
    assert classify(201, {}, body, NOW).errors == [("attributes", 1, "bad alias")]


def test_remaining_zero_pauses_until_reset():
    out = classify(201, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 2)}, "{}", NOW)
    assert out.pause_until == NOW + 2


def test_429_uses_reset_header_or_a_default():
    assert classify(429, {"X-RateLimit-Reset": str(int(NOW) + 3)}, "", NOW) == RateLimited(NOW + 3)
    assert classify(429, {}, "", NOW) == RateLimited(NOW + 1.0)
    assert classify(429, {"Retry-After": "7"}, "", NOW) == RateLimited(NOW + 7)


def test_failure_classes():
    assert isinstance(classify(500, {}, "oops", NOW), Retryable)
    assert isinstance(classify(503, {}, "", NOW), Retryable)
    assert isinstance(classify(408, {}, "", NOW), Retryable)
    for s in (401, 403, 404):
        assert isinstance(classify(s, {}, '{"message":"Invalid API key"}', NOW), AuthFailure)
    bad = classify(400, {}, '{"message":"Too many attributes"}', NOW)
    assert isinstance(bad, BadRequest) and "Too many attributes" in bad.reason


def test_garbage_success_body_is_still_success():
    assert classify(200, {}, "not json", NOW) == Delivered([], None)
