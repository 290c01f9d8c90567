"""What the Braze sandbox ended with, checked against the workload: correctness and delivery latency.

Delivery latency of a user's final event (one sample per user):

* ``t200``: when the 200 for the body holding the user's final event came back
  to the client (the event is stored in Redis before that 200 is sent).
* The sandbox stamps every /users/track request with a global ``seq`` and a
  receipt time ``t`` (request log), and every subscription change of a profile
  with the ``seq`` of the request that carried it (profile history).
* The *final run* of a profile's history is the entries after the last entry
  whose state differs from the expected final state. Entries before the final
  run cannot reflect the final event (they were followed by another state);
  entries inside it carry the final state.
* The receipt of the final event is the first final-run entry received at or
  after ``t200``; latency = its ``t`` − ``t200``. Why not the first entry of
  the run: the run can start with a send of an *earlier* event of the same
  state (follow … unfollow … follow, where the unfollow was coalesced away
  before it was sent), which is not a delivery of the final event. Why
  ``t >= t200`` is safe: a send that reflects the final event can only be
  claimed after the event was stored, and linesync waits at least its flush
  delay (500 ms) before sending a partial batch, so the µs between storing and
  the 200 reaching the client don't hide a delivery. Users whose final run
  lies wholly before ``t200`` are counted (and given latency 0). Limitation:
  a send of an *earlier* same-state event still in flight when ``t200`` came
  back would be taken for the final one (latency understated); with events of
  one user spread over the run and batches sent within ~1 s, that is rare.
* The sandbox and this process run on one host and both use ``time.time()``.
"""

from __future__ import annotations

from dataclasses import dataclass

from workload import Workload


@dataclass
class Outcome:
    correct: int
    wrong: int
    missing: int
    latencies_ms: list[float]
    before_200: int           # final run received wholly before t200 (latency taken as 0)
    objects: int              # attributes objects received
    track_ok: int             # 2xx /users/track requests
    track_429: int
    track_other: int
    first_t: float | None     # first 2xx /users/track receipt
    last_t: float | None      # last 2xx /users/track receipt
    max_per_second: int
    gaps: list[float]         # seconds between consecutive 2xx /users/track receipts, largest first

    def pct(self, q: float) -> float:
        xs = self.latencies_ms
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(q * len(xs)))]


def evaluate(wl: Workload, answered: list[float], group: str, profiles: list[dict], log: list[dict],
             stats: dict) -> Outcome:
    t_of = {e["seq"]: e["t"] for e in log}
    by_alias: dict[str, dict] = {}
    for p in profiles:
        for a in p["aliases"]:
            if a["alias_label"] == "line_id":
                by_alias[a["alias_name"]] = p
    correct = wrong = missing = before = 0
    lat: list[float] = []
    for user, want in wl.expected.items():
        p = by_alias.get(user)
        if p is None:
            missing += 1
            continue
        if p["subscription_groups"].get(group) != want:
            wrong += 1
            continue
        correct += 1
        t200 = answered[wl.final_body[user]]
        hist = [h for h in p["history"] if h["group"] == group]
        run_start = len(hist)
        while run_start > 0 and hist[run_start - 1]["state"] == want:
            run_start -= 1
        receipts = [t_of[h["seq"]] for h in hist[run_start:] if h["seq"] in t_of]
        after = [t for t in receipts if t >= t200]
        if after:
            lat.append((after[0] - t200) * 1000)
        else:
            before += 1
            lat.append(0.0)
    lat.sort()
    track = [e for e in log if e["path"] == "/users/track"]
    ok = [e for e in track if 200 <= e["status"] < 300]
    return Outcome(
        correct=correct, wrong=wrong, missing=missing, latencies_ms=lat, before_200=before,
        objects=stats["attributes_received"], track_ok=len(ok),
        track_429=sum(1 for e in track if e["status"] == 429),
        track_other=sum(1 for e in track if e["status"] != 429 and not 200 <= e["status"] < 300),
        first_t=min((e["t"] for e in ok), default=None), last_t=max((e["t"] for e in ok), default=None),
        max_per_second=stats["max_track_requests_per_second"],
        gaps=sorted((b["t"] - a["t"] for a, b in zip(ok, ok[1:])), reverse=True),
    )
