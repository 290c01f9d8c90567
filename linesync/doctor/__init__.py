"""`linesync doctor`: check the whole chain, one small function per check.

Each check returns a :class:`~shared.check.Check` (name, status,
detail, fix). The decisions are pure functions of what was read (Redis's
``INFO``, LINE's and Braze's answers, the worker registry, the resync
history); the reading goes through collaborators that tests replace with
fakes: an :class:`~linesync.doctor.http.Http` and a Redis client.

    (shared/check.py: Check, and the exit code of a list of them)
    http.py            the HTTP collaborator (requests underneath) and its Reply
    (shared/redis_checks.py: version >= 6.2, maxmemory-policy noeviction, AOF, memory headroom)
    line_checks.py     access token (/v2/bot/info), webhook URL on file and active,
                       LINE's own test delivery (--send-test)
    braze_checks.py    API key accepted by /users/track (a request that changes no
                       profile), subscription group id shaped like a Braze id
    process_checks.py  a live worker process, a beat holding redbeat's lock,
                       the age of the last completed resync
    run.py             diagnose(): every check in order, skipping what cannot be
                       checked (nothing after Redis when it does not answer, no
                       webhook checks when the access token is refused)

Exit codes: 0 every check passed; 1 at least one failed; 3 only warnings failed
(AOF off, no maxmemory, LINESYNC_PUBLIC_URL unset, no resync yet).
"""

from linesync.doctor.run import diagnose
from shared.check import Check, exit_code

__all__ = ["Check", "diagnose", "exit_code"]
