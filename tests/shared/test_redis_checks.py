"""Redis checks, from an INFO answer (pure)."""

import pytest

from shared import redis_checks
from shared.check import FAIL, OK, WARN

GOOD = {"redis_version": "7.0.15", "maxmemory_policy": "noeviction", "aof_enabled": 1,
        "aof_last_write_status": "ok", "used_memory": 100 * 2**20, "maxmemory": 1024 * 2**20}


def statuses(info):
    return {c.name: c.status for c in redis_checks.check_info(info)}


def test_a_production_ready_redis_passes():
    assert set(statuses(GOOD).values()) == {OK}


@pytest.mark.parametrize("v, status", [("6.2.0", OK), ("6.2.14", OK), ("7.2.4", OK), ("6.0.16", FAIL),
                                       ("5.0.7", FAIL), ("7.4.0-rc1", OK)])
def test_version(v, status):
    c = redis_checks.version({**GOOD, "redis_version": v})
    assert c.status == status
    if status == FAIL:
        assert "6.2" in c.detail and v in c.detail and "upgrade" in c.fix


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random", "volatile-lfu"])
def test_an_evicting_policy_fails_naming_it(policy):
    c = redis_checks.eviction({**GOOD, "maxmemory_policy": policy})
    assert c.status == FAIL
    assert policy in c.detail and "noeviction" in c.fix


def test_aof_off_is_a_warning():
    c = redis_checks.aof({**GOOD, "aof_enabled": 0})
    assert c.status == WARN and "appendonly yes" in c.fix


def test_aof_write_errors_fail():
    c = redis_checks.aof({**GOOD, "aof_last_write_status": "err"})
    assert c.status == FAIL and "disk" in c.fix


def test_memory_headroom():
    assert redis_checks.memory(GOOD).status == OK
    assert "10%" in redis_checks.memory(GOOD).detail
    full = redis_checks.memory({**GOOD, "used_memory": 950 * 2**20})
    assert full.status == FAIL and "93%" in full.detail and "503" in full.detail
    at_limit = redis_checks.memory({**GOOD, "used_memory": int(0.9 * 1024 * 2**20)})
    assert at_limit.status == OK


def test_no_maxmemory_is_a_warning_that_noeviction_does_nothing():
    c = redis_checks.memory({**GOOD, "maxmemory": 0})
    assert c.status == WARN
    assert "noeviction only takes effect at maxmemory" in c.detail and "maxmemory" in c.fix


class Log:
    def __init__(self):
        self.lines = []

    def warning(self, fmt, *args):
        self.lines.append(fmt % args)


@pytest.fixture
def policy(r):
    before = r.config_get("maxmemory-policy")["maxmemory-policy"]
    yield lambda p: r.config_set("maxmemory-policy", p)
    r.config_set("maxmemory-policy", before)


def test_at_start_refuses_an_evicting_policy_in_one_line(r, policy):
    from shared.errors import ConfigError
    policy("allkeys-lru")
    with pytest.raises(ConfigError) as e:
        redis_checks.at_start(r, "worker", Log())
    assert "allkeys-lru" in str(e.value) and "\n" not in str(e.value)


def test_at_start_warns_without_aof_or_maxmemory(r, policy):
    policy("noeviction")
    before = r.config_get("appendonly")["appendonly"], r.config_get("maxmemory")["maxmemory"]
    r.config_set("appendonly", "no")
    r.config_set("maxmemory", "0")
    try:
        log = Log()
        redis_checks.at_start(r, "worker", log)  # warnings only: nothing raised
    finally:
        r.config_set("appendonly", before[0])
        r.config_set("maxmemory", before[1])
    assert any("appendonly is off" in line for line in log.lines)
    assert any("no maxmemory set" in line for line in log.lines)


def test_at_start_carries_on_when_redis_is_not_there_yet():
    import redis
    log = Log()
    redis_checks.at_start(redis.Redis(port=1, socket_connect_timeout=0.2), "ingress", log)
    assert log.lines and "could not check" in log.lines[0]


def test_a_cluster_mode_endpoint_fails_saying_why():
    c = redis_checks.cluster({**GOOD, "cluster_enabled": 1})
    assert c.status == FAIL and "Celery's broker and redbeat" in c.detail and "cluster mode disabled" in c.fix
    assert redis_checks.cluster({**GOOD, "cluster_enabled": 0}).status == OK
    assert statuses({**GOOD, "cluster_enabled": 1})["redis.cluster"] == FAIL


def test_replicas_durability_wants_a_connected_replica_and_says_what_it_risks():
    def names(info):
        return {c.name: c for c in redis_checks.check_info(info, "replicas")}
    no_aof = {**GOOD, "aof_enabled": 0}
    ok = names({**no_aof, "connected_slaves": 2})
    assert "redis.aof" not in ok and ok["redis.replicas"].status == OK
    assert "2 replica(s)" in ok["redis.replicas"].detail and "without AOF" in ok["redis.replicas"].detail
    assert "without AOF" not in names({**GOOD, "connected_slaves": 1})["redis.replicas"].detail
    none = names({**no_aof, "connected_slaves": 0})["redis.replicas"]
    assert none.status == FAIL and "503" in none.detail and "LINESYNC_REDIS_DURABILITY=aof" in none.fix
    assert redis_checks.check_info(no_aof)[3].name == "redis.aof"  # the default is aof: a warning without it


class FakeInfo:
    def __init__(self, info):
        self._info = info

    def info(self):
        return self._info


def test_at_start_refuses_a_cluster_endpoint_in_one_line():
    from shared.errors import ConfigError
    with pytest.raises(ConfigError) as e:
        redis_checks.at_start(FakeInfo({**GOOD, "cluster_enabled": 1}), "ingress", Log())
    assert str(e.value).startswith("REDIS_URL: ") and "Cluster" in str(e.value) and "\n" not in str(e.value)


def test_at_start_with_replicas_durability_accepts_no_aof_and_warns_without_a_replica():
    log = Log()
    redis_checks.at_start(FakeInfo({**GOOD, "aof_enabled": 0, "connected_slaves": 1}), "worker", log, "replicas")
    assert log.lines == []
    redis_checks.at_start(FakeInfo({**GOOD, "aof_enabled": 0, "connected_slaves": 0}), "worker", log, "replicas")
    assert len(log.lines) == 1 and "no replica is connected" in log.lines[0]
