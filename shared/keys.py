"""Every Redis key linesync uses, in one place.

Layout (``P`` is ``LINESYNC_KEY_PREFIX``, default ``linesync``; it is wrapped in
a hash tag ``{P}`` so that every key lands in one Redis Cluster slot and the
Lua scripts, which receive all keys through KEYS, may touch them together):

  Ingress
    {P}:webhooks            STREAM  raw webhook bodies (field ``body``), consumer group ``workers``;
                                    an entry is deleted in the script that applies and acknowledges it
    {P}:rejected            STREAM  signed bodies that were not the LINE envelope (capped)

  Consuming (workers/consume.py, shared/lua/apply_events.lua)
    {P}:state:<b>           HASH    bucket b of the newest known subscription states: a LINE user id
                                    ("U" + 32 hex) -> its packed state (shared/state.py, lib/state.lua);
                                    b = 0 .. buckets-1, grown by linear hashing (shared/buckets.py), each
                                    bucket a listpack of ~48 users (~30 B a user)
    {P}:state:x             HASH    the same for user ids of any other form: id -> packed state
    {P}:state:meta          HASH    buckets (how many), entries (users held)
    {P}:state               HASH    the layout before buckets (user -> "<version><S|U>"): read as a
                                    fallback and moved by shared/migrate.py at start, then gone
    {P}:dedupe:<t>          HASH    window t (epoch ms / LINESYNC_DEDUPE_TTL_SECONDS / 1000) of remembered
                                    webhookEventIds: buckets, entries (shared/dedupe.py, lib/dedupe.lua)
    {P}:dedupe:<t>:<b>      HASH    bucket b of window t: 16-byte id -> "" (~22 B an id); every key of
                                    window t expires at the end of window t+1 (t and t-1 are checked)
    {P}:seen:<eventId>      STRING  dedupe mark of the layout before windows (read until moved by
                                    shared/migrate.py); still the mark of a handled accountLink event
                                    ({P}:seen:accountLink:<event>, workers/account_link.py), TTL
    {P}:migrate             HASH    progress of shared/migrate.py: state/seen cursors, "done" flags
    {P}:migrate:lease       STRING  the one process migrating (token, PX)
    {P}:stats               HASH    counters (events by type, duplicates, stale, transitions...)
    {P}:destination         STRING  the newest body's envelope "destination" (the bot user id), kept with
                                    several channels only, for `linesync doctor` (workers/consume.py)

  Outbox and delivery (shared/outbox.py, shared/lua/*.lua)
    {P}:outbox:buckets      ZSET    state bucket b holding users whose state must be sent (the dirty
                                    flag in their value, lib/state.lua), scored by when it first became
                                    dirty (ms): the outbox costs no memory per user; the state itself is
                                    read at claim time, so waiting updates coalesce to the newest
    {P}:outbox:ready        ZSET    a user listed alone to be sent (one a webhook event changed, an id of
                                    another form, a user with no state yet: links, DLQ replays), scored
                                    the same way
    {P}:outbox:flying       HASH    a LINE user's state field (its 16 bytes, lib/state.lua) -> batch id
                                    it is being delivered in
    {P}:outbox:inflight     HASH    the same for a user id of another form (and LINE user ids of
                                    batches a release before outbox:flying claimed): id -> batch id
    {P}:outbox:events       LIST    forwarded custom-event objects (JSON) waiting to be sent
    {P}:batches             HASH    batch id -> JSON {items, events, attempts, ...}
    {P}:batches:due         ZSET    batch id scored by lease expiry / next retry (ms)
    {P}:batches:owner       HASH    batch id -> token of the sender holding its lease; only that
                                    sender may renew, finish, retry or dead-letter it (absent while
                                    the batch waits to be claimed again)
    {P}:batches:retry       ZSET    batch ids waiting to retry after a failure, scored by their due
                                    time (ms); pulled forward together when Braze recovers
    {P}:dlq                 STREAM  dead letters: kind, reason, payload (JSON)

  Braze limits (shared/lua/limiter.lua)
    {P}:limit:<name>        STRING  GCRA theoretical arrival time (ms) of limiter <name>
    {P}:pause:<name>        HASH    until (ms), reason, kind: every worker waits until then
    {P}:breaker:<name>      HASH    failure streak, open-until (ms): shared retry backoff
    {P}:breaker:<name>:probe STRING one worker's right to probe a recovering endpoint

  Worker processes (workers/engine.py)
    {P}:worker:<name>       STRING  lease of a live worker process's delivery engine (token), PX;
                                    its stream consumers are named <name>/<loop>
    {P}:workers             ZSET    worker name -> last heartbeat (ms), for status and takeover

  Celery (workers/celery_app.py): kombu's keys (queues, unacked messages, bindings, fanout
  channels) start with "{P}:celery:"; redbeat's schedule and lock with "{P}:redbeat".

  Identity (issue 5)
    {P}:links:line          HASH    LINE user id -> newline-separated external_ids
    {P}:links:ext           HASH    external_id -> LINE user id
    {P}:nonces:<nonce>      STRING  account-link nonce -> external_id, TTL; deleted as it is read
    {P}:nonce-taken:<event> STRING  external_id whose nonce the accountLink event <event> took, until
                                    the event is marked done (a replay finds it again), TTL
    {P}:identity            STREAM  queued /users/identify and /users/merge items (group ``workers``)
    {P}:identity:attempts   HASH    stream id -> failed attempts of that item
    {P}:identity:retry      ZSET    stream id of an item waiting after a failure, scored by when its
                                    own backoff lets it go again (ms); emptied when Braze recovers

  Resync (shared/resync_runs.py, workers/resync.py)
    {P}:resync:run          HASH    current/last run: the fields of shared.resync_runs.Run (id, status, pages,
                                    followers, next token, error, phase, seq for compare-and-set...)
    {P}:resync:lock         STRING  one resync at a time
    {P}:resync:history      LIST    JSON summaries of finished runs (capped)
    {P}:resync:lease        STRING  token of the task processing the current run, PX (a dead worker's lapses)
    {P}:resync:queued       STRING  a wake-up for the current run is in the broker (EX)
    {P}:resync:seen:<runId> SET     ids seen by run <runId> (only with RESYNC_MARK_MISSING_UNSUBSCRIBED)
    {P}:resync:first        STRING  set once the first-start run was queued (RESYNC_ON_START), no TTL

  Several channels (shared/channels.py, LINESYNC_CHANNELS_FILE)
    Each channel's keys (stream, state, dedupe, outbox, batches, dead letters, links, nonces,
    identity, resync, rates) carry its scope after the prefix: {P}:ch:<channel>:state and so on;
    the channel ``default`` has none, so a single-channel deployment's keys are the ones above.
    Each Braze workspace's limiter, pauses and breaker carry the workspace's scope the same way,
    {P}:ws:<workspace>:limit:<name> (the workspace of ``default`` has none). Process-wide keys
    (worker, workers, celery, redbeat, metrics:exporter) are never scoped.

  Metrics
    {P}:rate:<series>:<t>   STRING  how many in the 10 s starting at epoch second t (TTL ~1 h), series
                                    delivered (objects Braze accepted) or webhooks (bodies applied):
                                    shared/rates.py
    {P}:metrics:exporter    STRING  lease (token, PX) of the one worker process that exports the cluster-wide
                                    figures read from Redis on its /metrics (workers/cluster_metrics.py)
"""

from __future__ import annotations

from dataclasses import dataclass

STREAM_GROUP = "workers"
# The channel whose keys carry no scope: the only one of a single-channel deployment.
DEFAULT_CHANNEL = "default"


@dataclass(frozen=True)
class Keys:
    prefix: str = "linesync"
    scope: str = ""  # "" or "ch:<channel>" / "ws:<workspace>": see "Several channels" above

    def _k(self, *parts: str) -> str:
        head = ("{" + self.prefix + "}", self.scope) if self.scope else ("{" + self.prefix + "}",)
        return ":".join(head + parts)

    def for_channel(self, name: str) -> Keys:
        """The keys of channel ``name`` (``default``: these very keys, unscoped)."""
        return Keys(self.prefix) if name == DEFAULT_CHANNEL else Keys(self.prefix, f"ch:{name}")

    @property
    def channel_streams(self) -> str:
        """SCAN pattern matching every scoped channel's webhook stream ({P}:ch:*:webhooks)."""
        return Keys(self.prefix)._k("ch", "*", "webhooks")

    def channel_of(self, key: str) -> str | None:
        """The channel a scoped key belongs to ({P}:ch:<name>:...), or None."""
        head = "{" + self.prefix + "}:ch:"
        return key[len(head):].split(":", 1)[0] if key.startswith(head) else None

    def for_workspace(self, workspace: str) -> Keys:
        """The limiter/pause/breaker keys of Braze workspace ``workspace`` ("": unscoped)."""
        return Keys(self.prefix, f"ws:{workspace}") if workspace else Keys(self.prefix)

    # ingress
    @property
    def webhooks(self) -> str:
        return self._k("webhooks")

    @property
    def rejected(self) -> str:
        return self._k("rejected")

    # consuming
    def seen(self, event_id: str) -> str:
        return self._k("seen", event_id)

    @property
    def seen_prefix(self) -> str:
        return self._k("seen")

    @property
    def state(self) -> str:
        """The prefix of the state buckets (and the old single hash's name)."""
        return self._k("state")

    def state_bucket(self, bucket: int) -> str:
        return self._k("state", str(bucket))

    @property
    def state_x(self) -> str:
        return self._k("state", "x")

    @property
    def state_meta(self) -> str:
        return self._k("state", "meta")

    @property
    def dedupe(self) -> str:
        """The prefix of the remembered event ids' windows."""
        return self._k("dedupe")

    def dedupe_window(self, window: int) -> str:
        return self._k("dedupe", str(window))

    def dedupe_bucket(self, window: int, bucket: int) -> str:
        return self._k("dedupe", str(window), str(bucket))

    @property
    def migrate(self) -> str:
        return self._k("migrate")

    @property
    def migrate_lease(self) -> str:
        return self._k("migrate", "lease")

    @property
    def stats(self) -> str:
        return self._k("stats")

    @property
    def destination(self) -> str:
        return self._k("destination")

    # outbox
    @property
    def outbox_ready(self) -> str:
        return self._k("outbox", "ready")

    @property
    def outbox_buckets(self) -> str:
        return self._k("outbox", "buckets")

    @property
    def outbox_inflight(self) -> str:
        return self._k("outbox", "inflight")

    @property
    def outbox_flying(self) -> str:
        return self._k("outbox", "flying")

    @property
    def outbox_events(self) -> str:
        return self._k("outbox", "events")

    @property
    def batches(self) -> str:
        return self._k("batches")

    @property
    def batches_due(self) -> str:
        return self._k("batches", "due")

    @property
    def batches_owner(self) -> str:
        return self._k("batches", "owner")

    @property
    def dlq(self) -> str:
        return self._k("dlq")

    # limits
    def limit(self, name: str) -> str:
        return self._k("limit", name)

    def pause(self, name: str) -> str:
        return self._k("pause", name)

    def breaker(self, name: str) -> str:
        return self._k("breaker", name)

    def breaker_probe(self, name: str) -> str:
        return self._k("breaker", name, "probe")

    @property
    def batches_retry(self) -> str:
        return self._k("batches", "retry")

    # worker processes
    def worker(self, name: str) -> str:
        return self._k("worker", name)

    @property
    def workers(self) -> str:
        return self._k("workers")

    # celery / beat
    @property
    def celery_prefix(self) -> str:
        return self._k("celery") + ":"

    @property
    def redbeat_prefix(self) -> str:
        return self._k("redbeat")

    @property
    def redbeat_lock(self) -> str:
        return self._k("redbeat", "lock")

    # identity
    @property
    def links_line(self) -> str:
        return self._k("links", "line")

    @property
    def links_ext(self) -> str:
        return self._k("links", "ext")

    def nonce(self, nonce: str) -> str:
        return self._k("nonces", nonce)

    def nonce_taken(self, event_key: str) -> str:
        return self._k("nonce-taken", event_key)

    @property
    def identity(self) -> str:
        return self._k("identity")

    @property
    def identity_attempts(self) -> str:
        return self._k("identity", "attempts")

    @property
    def identity_retry(self) -> str:
        return self._k("identity", "retry")

    # resync
    @property
    def resync_run(self) -> str:
        return self._k("resync", "run")

    @property
    def resync_lock(self) -> str:
        return self._k("resync", "lock")

    @property
    def resync_history(self) -> str:
        return self._k("resync", "history")

    @property
    def resync_lease(self) -> str:
        return self._k("resync", "lease")

    @property
    def resync_queued(self) -> str:
        return self._k("resync", "queued")

    def resync_seen(self, run_id: str) -> str:
        return self._k("resync", "seen", run_id)

    @property
    def resync_first(self) -> str:
        return self._k("resync", "first")

    # metrics
    def rate(self, series: str, bucket: int) -> str:
        return self._k("rate", series, str(bucket))

    @property
    def metrics_exporter(self) -> str:
        return self._k("metrics", "exporter")
