"""The Braze sandbox's ``/_sandbox/*`` control endpoints: inspection, faults, reset, limits.

A mixin of :class:`sandboxes.braze.BrazeSandbox`: each endpoint calls the
in-process method of the same meaning.
"""

from __future__ import annotations

from sandboxes.server import Request, Response, admin_body, json_response, reject_unknown


class AdminApi:
    """``GET|POST /_sandbox/...`` over the sandbox's in-process API.

    Served by BrazeSandbox's methods: profiles, profile, stats, requests,
    config, configure, reset, and FaultControls's faults, set_faults, clear_faults.
    """

    def _admin(self, request: Request, path: str) -> Response:
        route = (request.method, path)
        try:
            if route == ("GET", "/_sandbox/health"):
                return json_response(200, {"ok": True})
            if route == ("GET", "/_sandbox/profiles"):
                return json_response(200, {"profiles": self.profiles()})
            if route == ("GET", "/_sandbox/profile"):
                q = request.query
                if "external_id" in q:
                    found = self.profile(external_id=q["external_id"])
                elif "alias_name" in q:
                    found = self.profile(alias_name=q["alias_name"], alias_label=q.get("alias_label", "line_id"))
                elif "braze_id" in q:
                    found = self.profile(braze_id=q["braze_id"])
                else:
                    return json_response(400, {"message": "give external_id, alias_name(+alias_label) or braze_id"})
                if found is None:
                    return json_response(404, {"message": "no such profile"})
                return json_response(200, found)
            if route == ("GET", "/_sandbox/stats"):
                return json_response(200, self.stats())
            if route == ("GET", "/_sandbox/requests"):
                since = int(request.query.get("since", "0") or 0)
                return json_response(200, {"requests": self.requests(since)})
            if route == ("GET", "/_sandbox/faults"):
                return json_response(200, self.faults())
            if route == ("POST", "/_sandbox/faults"):
                body = admin_body(request)
                if body.pop("clear", False):
                    self.clear_faults()
                allowed = {"status", "count", "endpoint", "latency_ms", "poison_ids", "poison_mode"}
                reject_unknown(body, allowed)
                self.set_faults(**body)
                return json_response(200, self.faults())
            if route == ("POST", "/_sandbox/reset"):
                self.reset()
                return json_response(200, {"ok": True})
            if route == ("GET", "/_sandbox/config"):
                return json_response(200, self.config())
            if route == ("POST", "/_sandbox/config"):
                body = admin_body(request)
                reject_unknown(body, {"rate_limit", "batch_size", "identify_rate_limit", "api_key"})
                self.configure(**body)
                return json_response(200, self.config())
        except (ValueError, TypeError) as e:
            return json_response(400, {"message": str(e)})
        return json_response(404, {"message": "no such sandbox endpoint"})
