"""The consent state machine of one number in one flow, compiled once into a lookup table.

The `transitions` Machine below is the definition: states, triggers and destinations.
Every (state, trigger) pair is resolved through it once, at import, into `TABLE`, so a
message costs a dict lookup instead of a Machine construction or a trigger call, and the
store can apply the same table atomically inside Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from transitions import Machine

from bot.replies import Reply

STATES = ("new", "contacted", "asked", "clarified", "consented", "declined", "opted_out", "expired")
# Where a consent question is open: an answer is awaited and the expiry clock runs.
OPEN = ("asked", "clarified")
# Texts a closed sending window holds back (COMPLIANCE.md E.16-17); service texts still go.
CAMPAIGN_TEXTS = frozenset({"consent_request", "content"})

ALL_BUT_OPTED_OUT = [s for s in STATES if s != "opted_out"]

# (trigger, sources, destination, texts said on the way). A pair not listed changes
# nothing and says nothing: silence is the default answer.
SPEC: tuple[tuple[str, list[str], str, tuple[str, ...]], ...] = (
    ("ask", ["new", "contacted"], "asked", ("consent_request",)),
    # A claimed request the provider refused without processing (throttled, queue full).
    ("release", ["asked"], "new", ()),
    ("expire", list(OPEN), "expired", ()),
    ("yes", [*OPEN, "declined", "expired"], "consented", ("confirmation", "content")),
    ("no", [*OPEN, "consented", "expired"], "declined", ("declined",)),
    ("stop", ALL_BUT_OPTED_OUT, "opted_out", ("stopped",)),
    ("carrier_stop", ALL_BUT_OPTED_OUT, "opted_out", ()),
    ("start", ["opted_out"], "asked", ("consent_request",)),
    ("other", ["asked"], "clarified", ("clarification",)),
    # A number nobody asked hears who we are once; after that, only HELP gets an answer.
    ("other", ["new"], "contacted", ("help",)),
    ("yes", ["new"], "contacted", ("help",)),
    ("no", ["new"], "contacted", ("help",)),
    ("start", ["new"], "contacted", ("help",)),
    ("help", ["new"], "contacted", ("help",)),
    ("help", [s for s in STATES if s != "new"], "=", ("help",)),
    # A rights request moves no state and says no flow text: its answer, a one-time link to the
    # voter's page, comes from bot/voter_access.py (a text the ledger never holds: the link is a key).
    ("data", list(STATES), "=", ()),
)
TRIGGERS = tuple(dict.fromkeys(trigger for trigger, *_ in SPEC))
REPLY_TRIGGERS = {reply: reply.value.lower() for reply in Reply}


@dataclass(frozen=True)
class Step:
    """What one trigger does to one state: where it goes and which flow texts it says."""

    source: str
    dest: str
    says: tuple[str, ...]

    @property
    def changes(self) -> bool:
        """Say whether the state moves."""
        return self.dest != self.source


def build_machine() -> Machine:
    """Build the transitions Machine from SPEC (once per process: building is the costly part)."""
    machine = Machine(states=list(STATES), initial="new", auto_transitions=False,
                      ignore_invalid_triggers=True)
    for trigger, sources, dest, _ in SPEC:
        machine.add_transition(trigger, sources, dest)
    return machine


MACHINE = build_machine()


def _compile(machine: Machine) -> dict[tuple[str, str], Step]:
    says = {(trigger, source): texts for trigger, sources, _, texts in SPEC for source in sources}
    table = {}
    for state in STATES:
        for trigger in TRIGGERS:
            machine.set_state(state)
            getattr(machine, trigger)()
            table[state, trigger] = Step(state, machine.state, says.get((trigger, state), ()))
    machine.set_state("new")
    return table


TABLE = _compile(MACHINE)


def step(state: str, trigger: str, *, window_open: bool = True) -> Step:
    """Return what `trigger` does in `state`; with the window closed, campaign texts stay unsaid."""
    result = TABLE[state, trigger]
    if window_open or not CAMPAIGN_TEXTS.intersection(result.says):
        return result
    if result.dest == "asked":
        # Re-asking is a consent request: leave the number askable by the next round instead.
        return Step(state, "new", ())
    return Step(state, result.dest, tuple(t for t in result.says if t not in CAMPAIGN_TEXTS))


def row(trigger: str, *, window_open: bool = True) -> dict[str, Step]:
    """Return the step `trigger` takes from every state (what the store applies atomically)."""
    return {state: step(state, trigger, window_open=window_open) for state in STATES}
