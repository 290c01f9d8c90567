"""shared/redis_conn.py: REDIS_URL, sentinel:// included, turned into clients and Celery/redbeat settings."""

from __future__ import annotations

import pytest
import redis

from shared.config import load_settings, mask_url_password
from shared.errors import ConfigError
from shared.redis_conn import (
    REDIS_DOWN, PrimaryConnection, SentinelTarget, celery_broker, connection_pool, parse_sentinel_url,
    redbeat_settings,
)


def test_a_sentinel_url_names_sentinels_master_db_and_password():
    assert parse_sentinel_url("sentinel://:p%40ss@s1:26379,s2:26380,s3/mymaster/2") == SentinelTarget(
        (("s1", 26379), ("s2", 26380), ("s3", 26379)), "mymaster", 2, None, "p@ss")
    assert parse_sentinel_url("sentinel://app:pw@s1:1/m") == SentinelTarget((("s1", 1),), "m", 0, "app", "pw")


@pytest.mark.parametrize("url", ["sentinel://s1:26379", "sentinel://s1:26379/", "sentinel://s1:x/m",
                                 "sentinel://s1:1/m/zero", "sentinel://:pw@/m"])
def test_a_malformed_sentinel_url_is_a_config_error_naming_the_variable(url):
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_settings({"REDIS_URL": url})


def test_the_password_of_a_sentinel_url_is_masked():
    assert mask_url_password("sentinel://:secret@s1:1,s2:2/m/0") == "sentinel://:***@s1:1,s2:2/m/0"
    assert mask_url_password("sentinel://app:secret@s1:1/m") == "sentinel://app:***@s1:1/m"


def test_celery_and_redbeat_get_their_sentinel_settings():
    b = celery_broker("sentinel://:pw@s1:1,s2:2/m/3")
    assert b == {"broker_url": "sentinel://:pw@s1:1/3;sentinel://:pw@s2:2/3",
                 "broker_transport": "workers.broker:SentinelTransport",
                 "broker_transport_options": {"master_name": "m"}}
    rb = redbeat_settings("sentinel://:pw@s1:1,s2:2/m/3", socket_timeout=2.0)
    assert rb["redbeat_redis_url"].startswith("redis-sentinel")
    assert rb["redbeat_redis_options"] == {"sentinels": [["s1", 1], ["s2", 2]], "service_name": "m", "db": 3,
                                           "password": "pw", "socket_timeout": 2.0}
    assert celery_broker("redis://h:1/0") == {"broker_url": "redis://h:1/0",
                                              "broker_transport": "workers.broker:Transport"}
    assert redbeat_settings("rediss://h:1/0") == {"redbeat_redis_url": "rediss://h:1/0"}


def test_sentinel_pools_follow_the_primary_even_for_pinned_connections():
    pool = connection_pool("sentinel://s1:1,s2:2/m/1", socket_timeout=1.0, max_connections=5)
    assert pool.connection_class is PrimaryConnection and pool.service_name == "m"
    assert pool.connection_kwargs["db"] == 1 and pool.max_connections == 5
    assert isinstance(connection_pool("redis://127.0.0.1:1/0", socket_timeout=1.0), redis.ConnectionPool)


def test_a_full_redis_counts_as_unusable_for_now():
    assert issubclass(redis.exceptions.OutOfMemoryError, REDIS_DOWN)


def test_with_replicas_a_webhook_no_replica_confirms_is_refused_and_the_connection_stays_sound(r, keys, redis_url):
    from shared.errors import StoreUnavailable
    from shared.redis_conn import client
    from shared.webhook_queue import enqueue_pinned
    c = client(redis_url).connection_pool.make_connection()  # pinned, as the ingress holds one
    with pytest.raises(StoreUnavailable, match="confirmed by 0 of 1 replicas"):
        enqueue_pinned(c, keys, b"first", replicas=1)  # this Redis has no replica: WAIT answers 0
    r.set(keys.webhooks, "not a stream")  # XADD refused: WAIT's reply must not be read as the next answer
    with pytest.raises(StoreUnavailable):
        enqueue_pinned(c, keys, b"second", replicas=1)
    r.delete(keys.webhooks)
    entry_id = enqueue_pinned(c, keys, b"third")
    assert [i.decode() for i, _ in r.xrange(keys.webhooks)] == [entry_id]
