"""The Celery app carries its settings; the bootstep and the tasks reach them through their app."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from shared.keys import Keys
from workers.celery_app import create_app

ROOT = Path(__file__).resolve().parents[2]


def test_the_app_carries_its_settings_and_builds_its_runtime_from_them(settings):
    a = create_app(settings.replace(key_prefix="alpha"))
    b = create_app(settings.replace(key_prefix="beta"))
    assert a.settings.key_prefix == "alpha" and b.settings.key_prefix == "beta"
    assert a.runtime is a.runtime  # built once per process
    assert a.runtime.settings is a.settings and a.runtime.keys.prefix == "alpha"
    assert b.runtime.keys.prefix == "beta"  # two apps in one process: nothing shared through a global
    assert a.conf.broker_transport_options["global_keyprefix"] == Keys("alpha").celery_prefix


def test_a_task_uses_its_own_apps_settings(settings, r, monkeypatch):
    import workers.resync_tasks  # noqa: F401  (what the worker imports at start: the app's `include`)
    queued = []
    app = create_app(settings.replace(key_prefix="tasks-own"))
    other = create_app(settings.replace(key_prefix="another"))  # the latest app made is Celery's "current" one
    for a, name in ((app, "own"), (other, "other")):
        monkeypatch.setattr(a.tasks["linesync.resync.chunk"], "apply_async",
                            lambda args=(), _n=name, **kw: queued.append((_n, *args)))
    res = app.tasks["linesync.resync.start"].apply(kwargs={"reason": "test"}).get()
    assert res["created"] and queued == [("own", res["run_id"])]  # its successor goes through the same app
    assert r.hget(Keys("tasks-own").resync_run, "id").decode() == res["run_id"]
    assert not r.exists(Keys("another").resync_run) and not r.exists(Keys("linesync").resync_run)


def test_the_bootstep_runs_the_engine_on_the_runtime_of_the_workers_app(settings, r, monkeypatch):
    import workers.engine
    from workers.bootstep import EngineStep
    started = []

    class FakeEngine:
        def __init__(self, rt, **kw):
            self.rt = rt

        def start(self):
            started.append(self.rt)
            return self

        def stop(self):
            started.append("stopped")

    monkeypatch.setattr(workers.engine, "Engine", FakeEngine)
    app = create_app(settings.replace(key_prefix="step"))
    worker = SimpleNamespace(app=app)
    step = EngineStep(worker)
    try:
        step.start(worker)
        # What was built before the engine (Celery, the runtime) is frozen out of the collector's walks.
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    step.stop(worker)
    assert started == [app.runtime, "stopped"]


def test_importing_the_workers_package_neither_builds_the_app_nor_imports_celery():
    probe = ("import sys, workers, workers.resync, workers.line_api, workers.runtime; "
             "print(json.dumps(['app' in vars(workers), sorted(m for m in sys.modules if m.split('.')[0] == 'celery')]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINESYNC_", "BRAZE_", "LINE_", "REDIS_"))}
    out = subprocess.run([sys.executable, "-c", "import json; " + probe], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [False, []]
