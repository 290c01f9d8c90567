"""The Braze sandbox's compact store: each profile kept as its identifier and subscription states.

For runs of millions of profiles (``linesync sandbox braze --compact``): a
full profile (sandboxes/braze_model.py ``_Store``) costs ~1.3 KB in Python,
13 GB for 10,000,000; here a profile is one dict entry, its identifier as a
string (~90 B for a LINE alias) and a states tuple shared by every profile in
the same states (~120 B a profile, with the dict's own table).

What /users/track writes is applied to a :class:`Profile` made for the call
(as the full store would) and then :meth:`CompactStore.save` keeps only its
subscription states. Not kept: native_line_id, custom attributes, events,
purchases and the history (the request counters in ``/_sandbox/stats`` still
count them); there are no Braze ids to look a profile up by, and
/users/identify and /users/merge are refused (sandboxes/braze.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sandboxes.braze_model import Identifier, Profile

# An identifier kind's one-letter tag at the start of a key; the parts are joined by _SEP.
_TAGS = {"external_id": "x", "user_alias": "a", "email": "e", "phone": "p"}
_SEP = "\x1f"
BRAZE_ID_PREFIX = "compact:"

States = tuple[tuple[str, str], ...]  # ((subscription_group_id, state), ...) sorted


def _key(ident: Identifier) -> str | None:
    kind, value = ident
    if kind not in _TAGS:  # braze_id: a compact profile has none to be found by
        return None
    parts = (value[1], value[0]) if kind == "user_alias" else (value,)  # (label, name)
    return _SEP.join((_TAGS[kind], *parts))


@dataclass
class _Made(Profile):
    """A profile made from a stored entry for one call; ``key`` names the entry."""

    key: str = ""


class CompactStore:
    """Profiles as ``{identifier key: states}``. The interface of ``_Store`` that /users/track uses
    (find, create, save), plus ``len`` and ``all``. Callers hold the sandbox lock."""

    def __init__(self) -> None:
        self._states: dict[str, States] = {}
        self._shared: dict[States, States] = {(): ()}  # one tuple per distinct set of states

    def __len__(self) -> int:
        return len(self._states)

    def all(self) -> list[Profile]:
        return [self._profile(key, states) for key, states in self._states.items()]

    def find(self, ident: Identifier) -> Profile | None:
        key = _key(ident)
        states = self._states.get(key) if key is not None else None
        return None if states is None else self._profile(key, states)

    def create(self, ident: Identifier) -> Profile:
        key = _key(ident)
        if key is None:
            raise ValueError(f"a compact store cannot create a profile by {ident[0]}")
        self._states[key] = ()
        return self._profile(key, ())

    def save(self, p: Profile) -> None:
        """Keep ``p``'s subscription states (everything else it holds is dropped)."""
        states = tuple(sorted(p.subscription_groups.items()))
        if not isinstance(p, _Made):
            raise TypeError("a compact store saves only the profiles it made")
        self._states[p.key] = self._shared.setdefault(states, states)

    @staticmethod
    def _profile(key: str, states: States) -> Profile:
        """The profile ``key`` names, as /users/track and /_sandbox/profile see it."""
        tag, value = key.split(_SEP, 1)
        p = _Made(braze_id=BRAZE_ID_PREFIX + key.replace(_SEP, ":"), subscription_groups=dict(states), key=key)
        if tag == "a":
            label, name = value.split(_SEP, 1)
            p.aliases.append((name, label))
        elif tag == "x":
            p.external_id = value
        else:
            p.custom_attributes["email" if tag == "e" else "phone"] = value
        return p
