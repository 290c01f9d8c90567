"""Real servers the way managed Redis offers them: a cluster-mode endpoint is refused at start in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.procs import base_env
from tests.support.redis_topologies import ClusterNode

pytestmark = pytest.mark.integration


def test_every_process_refuses_a_cluster_mode_endpoint_in_one_line_and_doctor_says_why():
    node = ClusterNode().start()
    try:
        env = base_env(REDIS_URL=node.url, LINE_CHANNEL_SECRET="s", BRAZE_REST_ENDPOINT="http://127.0.0.1:9",
                       BRAZE_API_KEY="k", BRAZE_SUBSCRIPTION_GROUP_ID="g", LINESYNC_WORKER_METRICS_PORT="0")
        linesync = os.path.join(os.path.dirname(sys.executable), "linesync")
        out = subprocess.run([linesync, "ingress", "--bind", "127.0.0.1:0"], env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 2
        [line] = [x for x in (out.stdout + out.stderr).splitlines() if "REDIS_URL" in x]
        assert "Redis Cluster endpoint (cluster mode enabled)" in line and "cluster-mode-disabled" in line
        doctor = subprocess.run([linesync, "doctor"], env=env, capture_output=True, text=True, timeout=60)
        assert doctor.returncode != 0 and "FAIL  redis.cluster:" in doctor.stdout
    finally:
        node.stop()
