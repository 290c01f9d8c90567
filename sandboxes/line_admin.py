"""The LINE sandbox's ``/_sandbox/*`` control endpoints: health, stats, faults, pushes, followers, reset.

A mixin of :class:`sandboxes.line.LineSandbox`: each endpoint calls the
in-process method of the same meaning.
"""

from __future__ import annotations

from sandboxes.server import Request, Response, admin_body, json_response, reject_unknown


class AdminApi:
    """``GET|POST /_sandbox/...`` over the sandbox's in-process API.

    Served by LineSandbox's stats and reset, FollowersApi's follower methods,
    BotApi's pushes, and FaultControls's faults, set_faults, clear_faults.
    """

    def _admin(self, request: Request, path: str) -> Response:
        route = (request.method, path)
        try:
            if route == ("GET", "/_sandbox/health"):
                return json_response(200, {"ok": True})
            if route == ("GET", "/_sandbox/stats"):
                return json_response(200, self.stats())
            if route == ("GET", "/_sandbox/faults"):
                return json_response(200, self.faults())
            if route == ("POST", "/_sandbox/faults"):
                body = admin_body(request)
                if body.pop("clear", False):
                    self.clear_faults()
                reject_unknown(body, {"forbidden", "fail_pages", "expire_tokens", "latency_ms", "page_time_ms",
                                      "webhook_unset", "webhook_inactive"})
                self.set_faults(**body)
                return json_response(200, self.faults())
            if route == ("GET", "/_sandbox/pushes"):
                return json_response(200, {"pushes": self.pushes()})
            if route == ("GET", "/_sandbox/followers"):
                return json_response(200, {"count": self.follower_count()})
            if route == ("POST", "/_sandbox/followers"):
                body = admin_body(request)
                reject_unknown(body, {"count", "ids", "add", "remove"})
                if "count" in body:
                    self.set_followers(int(body["count"]))
                if "ids" in body:
                    self.set_followers(list(body["ids"]))
                self.add_followers(list(body.get("add", [])))
                self.remove_followers(list(body.get("remove", [])))
                return json_response(200, {"count": self.follower_count()})
            if route == ("POST", "/_sandbox/reset"):
                self.reset()
                return json_response(200, {"ok": True})
        except (ValueError, TypeError) as e:
            return json_response(400, {"message": str(e)})
        return json_response(404, {"message": "no such sandbox endpoint"})
