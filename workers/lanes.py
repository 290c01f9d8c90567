"""A worker process serving several channels (``LINESYNC_CHANNELS_FILE``): one lane per channel.

A lane is a channel's :class:`~workers.runtime.Runtime`: its settings (subscription group,
forwarded events, resync schedule...) and its Redis keys (``Keys.for_channel``), with the Braze
client, limiters and senders of its Braze workspace. Channels with the same REST endpoint and
API key share one workspace, so they share its client, limiters (``Keys.for_workspace``: one
budget, pause and breaker in Redis) and senders; another workspace's 401, 429 or outage never
holds them. When a workspace's Braze answers again, the retries of every channel in it are
released.

Without a channels file there are no lanes: the worker runs exactly as it always has
(``runtime.build``). :func:`base` is what ``runtime.build`` returns with one: the
process-wide runtime (worker presence, exporter lease, Celery) on the unscoped keys.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared import identity, outbox
from shared.channels import Channel
from shared.clock import Clock, now_ms
from shared.config import Settings
from shared.keys import DEFAULT_CHANNEL, Keys
from shared.limiter import IDENTIFY, TRACK, Limiter
from workers.braze import BrazeClient
from workers.runtime import Runtime
from workers.sending import Sender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lane:
    channel: Channel
    rt: Runtime

    @property
    def name(self) -> str:
        return self.channel.name


_lock = threading.Lock()
_by_base: dict[int, list[Lane]] = {}  # id(base runtime) -> its lanes


def base(settings: Settings, clock: Clock | None, build: Callable[[Settings, Clock | None], Runtime]) -> Runtime:
    """Build every channel's lane and return the process-wide runtime they hang off (:func:`of`)."""
    lanes = build_lanes(settings.channels(), clock, build)
    first = lanes[0].rt
    rt = dataclasses.replace(first, settings=settings, keys=Keys(settings.key_prefix))
    with _lock:
        _by_base[id(rt)] = lanes
    return rt


def of(rt: Runtime) -> list[Lane]:
    """The lanes of a runtime :func:`base` returned; [] for a single-channel runtime."""
    with _lock:
        return list(_by_base.get(id(rt), ()))


def lane(rt: Runtime, channel: str | None) -> Runtime:
    """The runtime of ``channel`` (None: the only channel of a single-channel worker, or the
    channel ``default`` of a channels file: a task queued before the file existed).

    Raises KeyError for a channel this worker does not serve.
    """
    lanes = of(rt)
    if not lanes:
        if channel not in (None, DEFAULT_CHANNEL):
            raise KeyError(channel)
        return rt
    channel = DEFAULT_CHANNEL if channel is None else channel
    for ln in lanes:
        if ln.name == channel:
            return ln.rt
    raise KeyError(channel)


def build_lanes(channels: Sequence[Channel], clock: Clock | None,
                build: Callable[[Settings, Clock | None], Runtime]) -> list[Lane]:
    built = []
    for ch in channels:
        rt = build(ch.settings, clock)
        clock = clock or rt.clock  # one clock (Redis's TIME) for every lane
        built.append((ch, dataclasses.replace(rt, keys=ch.keys)))
    by_workspace: dict[str, list[tuple[Channel, Runtime]]] = {}
    for ch, rt in built:
        by_workspace.setdefault(ch.workspace, []).append((ch, rt))
    lanes = []
    for members in by_workspace.values():
        parts = _workspace(members)
        lanes += [Lane(ch, dataclasses.replace(rt, **parts)) for ch, rt in members]
    order = {ch.name: i for i, ch in enumerate(channels)}
    lanes.sort(key=lambda ln: order[ln.name])
    log.info("serving %d channels in %d Braze workspaces: %s", len(lanes), len(by_workspace),
             ", ".join(f"{ln.name} (workspace {ln.channel.workspace_label})" for ln in lanes))
    return lanes


def _workspace(members: list[tuple[Channel, Runtime]]) -> dict:
    """One workspace's Braze client, limiters and senders, shared by its channels' lanes."""
    ch, rt = members[0]
    s, clock, wkeys = ch.settings, rt.clock, ch.workspace_keys
    limits = dict(retry_base=s.braze_retry_base_seconds, probe_max=s.braze_probe_max_seconds,
                  pause_max=s.braze_pause_max_seconds)
    track = Limiter(rt.r, wkeys, TRACK, s.braze_track_rate_limit, **limits)
    ident = Limiter(rt.r, wkeys, IDENTIFY, s.braze_identify_rate_limit, **limits)
    lanes = [(m_rt.r, m_rt.keys) for _, m_rt in members]

    def release_track() -> None:
        for r, keys in lanes:
            outbox.release_retries(r, keys, now_ms=now_ms(clock))

    def release_identify() -> None:
        for r, keys in lanes:
            identity.release_retries(r, keys)

    return dict(
        braze=rt.braze, track_limiter=track, identify_limiter=ident,
        track_sender=Sender(track, clock, auth_retry_seconds=s.braze_auth_retry_seconds, what="/users/track",
                            on_recovered=release_track),
        identify_sender=Sender(ident, clock, auth_retry_seconds=s.braze_auth_retry_seconds,
                               what="/users/identify and /users/merge", on_recovered=release_identify),
    )


def engine_for(rt: Runtime, **kw):
    """The worker's engine: the runtime's one channel, or every lane with its own hooks and wake-ups."""
    from workers.engine import Engine
    from workers.hooks import consume_hooks
    from workers.resync_tasks import wake

    lanes = of(rt)
    if not lanes:
        return Engine(rt, hooks=consume_hooks(rt), housekeeping=[lambda: wake(rt)], **kw)
    _report_leftovers(rt, lanes)
    return Engine(rt, lanes=[(ln.name, ln.rt, consume_hooks(ln.rt)) for ln in lanes],
                  housekeeping=[_waker(ln) for ln in lanes], **kw)


def _report_leftovers(rt: Runtime, lanes: list[Lane]) -> None:
    from shared import leftovers
    from shared.redis_conn import REDIS_DOWN

    try:
        found = leftovers.find(rt.r, rt.settings.key_prefix, [ln.name for ln in lanes])
    except REDIS_DOWN:
        return
    for line in leftovers.describe(found):
        log.warning("%s", line)


def _waker(ln: Lane) -> Callable[[], object]:
    from workers.resync_tasks import wake

    return lambda: wake(ln.rt, channel=ln.name)
