"""Local stand-ins for Braze and LINE (docs/guide.md, "Local sandboxes"), served over real HTTP.

``linesync up`` starts them when ``BRAZE_REST_ENDPOINT`` / ``LINE_API_BASE_URL``
are unset, ``linesync sandbox braze|line`` runs one in the foreground, and the
tests start them in-process on a free port::

    with BrazeSandbox(rate_limit="10/1s") as braze:
        requests.post(f"{braze.url}/users/track", ...)
        braze.profile(alias_name="U…")

Both expose their inspection and fault controls in-process (methods) and over
HTTP under ``/_sandbox/…`` for out-of-process use.
"""

from sandboxes.braze import BrazeSandbox
from sandboxes.line import LineSandbox, follower_id
from sandboxes.server import SandboxServer

__all__ = ["BrazeSandbox", "LineSandbox", "SandboxServer", "follower_id"]
