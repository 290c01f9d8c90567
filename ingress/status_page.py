"""``GET /status``: the pipeline at a glance, for the admin bind (read-only, no token).

Server-rendered HTML with no build step and no script: it refreshes itself
every ``REFRESH_S`` seconds (``<meta http-equiv="refresh">``) and draws its
one-hour chart as inline SVG. It shows what ``linesync status`` shows
(shared/status.py ``gather``, with the identify/merge queue, and the resync runs) plus the last hour of
delivered objects/s and webhooks/s (shared/rates.py), and where the follow state
goes in Braze (``BRAZE_STATE_MODE``: the subscription group and/or the custom
attributes ``line_follow_state`` and ``line_follow_state_at``). :func:`render`
is pure: it turns that snapshot into the page.

With several channels (``LINESYNC_CHANNELS_FILE``) the page shows one channel,
``/status?channel=<name>`` (default: ``default``, else the first), with its Braze
workspace's limits and links to the others.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, request

from ingress.state import current as state
from shared import payload, rates
from shared.config import Settings
from shared.redis_conn import REDIS_DOWN
from shared.resync_runs import resync_status
from shared.clock import redis_now
from shared.status import describe_limit, gather, limits, workers

bp = Blueprint("status_page", __name__)

# The page reloads itself this often (s).
REFRESH_S = 10
# Chart size (px).
CHART_W, CHART_H = 720, 180


def braze_state(settings: Settings) -> dict[str, Any]:
    """What the workers write for a follow state, from these settings (the ingress reads the same environment)."""
    mode, group = settings.braze_state_mode, settings.braze_subscription_group_id
    out: dict[str, Any] = {"mode": mode, "writes": payload.destination(mode, group)}
    if mode != payload.SUBSCRIPTION_GROUP:
        out["attributes"] = {payload.STATE_ATTRIBUTE: " / ".join(payload.FOLLOW_STATES.values()),
                             payload.STATE_AT_ATTRIBUTE: "time (ISO 8601 UTC) of the event behind the state"}
    return out


def snapshot(r, keys, settings: Settings | None = None) -> dict[str, Any]:
    now = redis_now(r)
    out = gather(r, keys, now)
    out["braze_state"] = braze_state(settings or Settings())
    out["resync"] = resync_status(r, keys, now=int(now * 1000))
    out["series"] = {name: rates.series(r, keys, name, now) for name in (rates.DELIVERED, rates.WEBHOOKS)}
    out["now"] = now
    return out


@bp.get("/status")
def status_page() -> Response:
    st = state()
    try:
        if st.settings.channel_table:
            body, code = _channel_page(st, request.args.get("channel"))
        else:
            body, code = render(snapshot(st.redis, st.keys, st.settings)), 200
    except REDIS_DOWN as e:
        body, code = render_down(type(e).__name__), 503
    return Response(body, status=code, mimetype="text/html", headers={"Cache-Control": "no-store"})


def _channel_page(st, name: str | None) -> tuple[str, int]:
    """One channel's page, its workspace's limits, the process-wide worker list and links to the others."""
    chans = st.settings.channels()
    names = [c.name for c in chans]
    name = name or ("default" if "default" in names else names[0])
    ch = st.settings.channel(name)
    if ch is None:
        return render_down(f"no channel {name}"), 404
    s = snapshot(st.redis, ch.keys, ch.settings)
    s["limits"] = limits(st.redis, ch.workspace_keys, s["now"])
    s["workers"] = workers(st.redis, st.keys, s["now"])
    s["channel"], s["channels"], s["workspace"] = name, names, ch.workspace_label
    return render(s), 200


def _channel_nav(s: dict[str, Any]) -> str:
    if not s.get("channels"):
        return ""
    links = " · ".join(f"<b>{_e(n)}</b>" if n == s["channel"] else f'<a href="?channel={_e(n)}">{_e(n)}</a>'
                       for n in s["channels"])
    return (f'<div class="sub">channel <b>{_e(s["channel"])}</b> (Braze workspace {_e(s["workspace"])}); '
            f"channels: {links}</div>")


def _e(v: Any) -> str:
    return html.escape(str(v))


def _n(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return _e(v)


def _figure(label: str, value: Any, note: str = "", level: str = "") -> str:
    return (f'<div class="fig {level}"><div class="v">{_n(value)}</div><div class="l">{_e(label)}</div>'
            + (f'<div class="n">{_e(note)}</div>' if note else "") + "</div>")


def chart(series: dict[str, Sequence[tuple[int, float]]], now: float) -> str:
    """Two lines over the last hour, per second, with the peak on the axis."""
    colours = {rates.DELIVERED: "#1f77b4", rates.WEBHOOKS: "#ff7f0e"}
    peak = max([v for pts in series.values() for _, v in pts] + [1.0])
    start = now - rates.HOUR
    lines = []
    for name, pts in series.items():
        coords = " ".join(f"{(t - start) / rates.HOUR * CHART_W:.1f},{CHART_H - v / peak * (CHART_H - 10):.1f}"
                          for t, v in pts)
        lines.append(f'<polyline fill="none" stroke="{colours[name]}" stroke-width="1.5" points="{coords}"/>')
    ticks = "".join(
        f'<text x="{x}" y="{CHART_H + 14}" class="t">{label}</text>'
        for x, label in ((0, "−60 min"), (CHART_W / 2 - 20, "−30 min"), (CHART_W - 24, "now")))
    legend = " ".join(f'<span style="color:{colours[n]}">■ {label}</span>'
                      for n, label in ((rates.DELIVERED, "delivered objects/s"), (rates.WEBHOOKS, "webhooks/s")))
    return (f'<svg viewBox="0 0 {CHART_W} {CHART_H + 20}" width="{CHART_W}" height="{CHART_H + 20}" role="img" '
            f'aria-label="throughput over the last hour">'
            f'<line x1="0" y1="{CHART_H}" x2="{CHART_W}" y2="{CHART_H}" stroke="#999"/>'
            f'<text x="2" y="10" class="t">peak {peak:,.1f}/s</text>{"".join(lines)}{ticks}</svg>'
            f'<div class="legend">{legend}</div>')


def identity_table(idn: dict[str, Any] | None) -> str:
    """The identify/merge queue's rows (shared/status.py ``identity_queue``); dead letters in red."""
    if not idn:
        return "<tr><td>unknown</td></tr>"
    rows = [("queued", idn["queued"], ""), ("held by workers", idn["held"], ""),
            ("waiting to retry", idn["retrying"], "")]
    rows += [(f"dead-lettered: {kind}", n, "bad" if n else "") for kind, n in idn["dead_letters"].items()]
    return "".join(f'<tr class="{level}"><td>{_e(label)}</td><td>{_n(n)}</td></tr>' for label, n, level in rows)


def render(s: dict[str, Any]) -> str:
    q, o, lim, dl = s["queue"], s["outbox"], s["limits"], s["dead_letters"]
    live = [w for w in s["workers"] if w["alive"]]
    age = q["oldest_unconsumed_age_s"]
    figures = [
        _figure("delivered objects/s (1 min)", s["delivered_per_s_last_minute"]),
        _figure("webhooks/s (1 min)", s["webhooks_per_s_last_minute"]),
        _figure("webhook backlog", q["lag"], f"oldest {age} s" if age is not None else "",
                "bad" if age is not None and age > 300 else ""),
        _figure("profiles waiting", o["pending_profiles"]),
        _figure("in flight", o["inflight_profiles"], f"{o['open_batches']} batches, {o['retrying_batches']} retrying"),
        _figure("dead letters", dl["total"], "", "bad" if dl["total"] else ""),
        _figure("live workers", len(live), "", "" if live else "bad"),
        _figure("profiles known", s["profiles_known"]),
    ]
    limit_rows = []
    for name, st in lim.items():
        level = "bad" if st["paused"] or st["failure_streak"] else ""
        limit_rows.append(f'<tr class="{level}"><td>{_e(name)}</td><td>{_e(describe_limit(st))}</td></tr>')
    dl_rows = "".join(f"<tr><td>{_e(k)}</td><td>{_n(v)}</td></tr>" for k, v in dl.items() if k != "total")
    worker_rows = "".join(
        f'<tr class="{"" if w["alive"] else "dim"}"><td>{_e(w["name"])}</td>'
        f'<td>{"alive" if w["alive"] else "gone"}, seen {w["seen_s_ago"]} s ago</td></tr>' for w in s["workers"])
    identity_rows = identity_table(s.get("identity"))
    rs = s.get("resync") or {}
    resync_rows = []
    for label in ("current", "last"):
        run = rs.get(label)
        if run:
            resync_rows.append(
                f"<tr><td>{label}</td><td>{_e(run.get('status'))} ({_e(run.get('reason'))}): "
                f"{_n(run.get('pages'))} pages, {_n(run.get('followers'))} followers"
                + (f", error: {_e(run['error'])}" if run.get("error") else "") + "</td></tr>")
    bs = s.get("braze_state") or {}
    state_rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in (
        [("BRAZE_STATE_MODE", bs["mode"]), ("writes", bs["writes"])] if bs else [])
        + [(f"· {name}", what) for name, what in bs.get("attributes", {}).items()])
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(s["now"]))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_S}">
<title>linesync status</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 980px; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 15px; margin: 24px 0 8px; }}
.sub {{ color: #666; }} .figs {{ display: flex; flex-wrap: wrap; gap: 10px; }}
.fig {{ border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 140px; }}
.fig .v {{ font-size: 22px; font-weight: 600; }} .fig .l, .fig .n {{ color: #555; font-size: 12px; }}
.bad {{ border-color: #d33; color: #b00; }} tr.bad td {{ color: #b00; }} tr.dim td {{ color: #999; }}
table {{ border-collapse: collapse; }} td {{ padding: 2px 14px 2px 0; vertical-align: top; }}
.t {{ font-size: 11px; fill: #666; }} .legend {{ font-size: 12px; color: #444; }}
</style></head><body>
<h1>linesync status</h1>
<div class="sub">as of {when} (Redis's clock); refreshes every {REFRESH_S} s</div>
{_channel_nav(s)}
<div class="figs">{"".join(figures)}</div>
<h2>Last hour</h2>
{chart(s["series"], s["now"])}
<h2>Braze state</h2>
<table>{state_rows or "<tr><td>unknown</td></tr>"}</table>
<h2>Braze limits</h2>
<table>{"".join(limit_rows)}</table>
<h2>Identity queue (/users/identify, /users/merge)</h2>
<table>{identity_rows}</table>
<h2>Dead letters</h2>
<table>{dl_rows or "<tr><td>none</td></tr>"}</table>
<h2>Resync</h2>
<table>{"".join(resync_rows) or "<tr><td>none yet</td></tr>"}</table>
<h2>Workers</h2>
<table>{worker_rows or "<tr><td>none seen in the last hour</td></tr>"}</table>
</body></html>
"""


def render_down(reason: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" '
            f'content="{REFRESH_S}"><title>linesync status</title></head><body><h1>linesync status</h1>'
            f'<p class="bad">Redis does not answer ({_e(reason)}): nothing can be shown. The ingress answers '
            f'503 to LINE meanwhile, which redelivers.</p></body></html>')
