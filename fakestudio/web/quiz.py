"""The live quiz: which of two pictures is the fake? The presenter opens and reveals each
round; phones vote (one vote per phone per round, the last one counts until the reveal) and
everyone sees the tally as it moves (server-sent events, fakestudio.web.events).

Votes live in memory only, keyed by a random voter id in a cookie: no names, nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fakestudio.web.events import Hub
from fakestudio.web.talk import BASELINE_NOTE, BASELINES, Talk

PHASES = ("waiting", "voting", "revealed")
MAX_VOTERS = 5000  # per round; a room, not the internet


class QuizError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Quiz:
    talk: Talk
    join_url: str = ""
    round: int | None = None
    phase: str = "waiting"
    votes: dict[int, dict[str, str]] = field(default_factory=dict)  # round -> voter -> a|b
    evidence: dict[int, dict] = field(default_factory=dict)  # picture id -> verdict summary
    hub: Hub = None  # type: ignore[assignment]

    def __post_init__(self):
        # phones and the presenter see the tally move up to 4 times a second: 200 phones
        # cost 800 small messages a second at most, however fast the votes come
        self.hub = Hub(self.snapshot, min_interval=0.25)

    # --- the presenter ---------------------------------------------------------------------

    def open_round(self, rnd: int) -> None:
        if not 0 <= rnd < len(self.talk.pairs):
            raise QuizError(404, "no-round", f"no round {rnd}")
        self.round, self.phase = rnd, "voting"
        self.votes.setdefault(rnd, {})
        self.hub.publish()

    def reveal(self, rnd: int) -> None:
        if self.round != rnd:
            raise QuizError(409, "not-current", f"round {rnd} is not the open round")
        self.phase = "revealed"
        self.hub.publish()

    def close(self) -> None:
        self.round, self.phase = None, "waiting"
        self.hub.publish()

    def reset(self) -> None:
        self.votes.clear()
        self.close()

    # --- the audience ----------------------------------------------------------------------

    def vote(self, voter: str, rnd: int, choice: str) -> dict:
        if choice not in ("a", "b"):
            raise QuizError(400, "bad-choice", "vote 'a' or 'b'")
        if self.round != rnd or self.phase != "voting":
            raise QuizError(409, "closed", "this round is not open for votes")
        ballots = self.votes.setdefault(rnd, {})
        if voter not in ballots and len(ballots) >= MAX_VOTERS:
            raise QuizError(429, "full", "too many voters in this round")
        ballots[voter] = choice
        self.hub.publish()
        return self.tally(rnd)

    def tally(self, rnd: int | None) -> dict:
        ballots = self.votes.get(rnd, {}) if rnd is not None else {}
        a = sum(1 for c in ballots.values() if c == "a")
        return {"a": a, "b": len(ballots) - a, "total": len(ballots)}

    def snapshot(self) -> dict:
        """What every screen shows now; the answer only once revealed."""
        out: dict = {
            "round": self.round,
            "rounds": len(self.talk.pairs),
            "phase": self.phase,
            "tally": self.tally(self.round),
            "join_url": self.join_url,
        }
        if self.round is not None:
            pair = self.talk.pairs[self.round]
            out["images"] = {
                "a": f"/quiz/image/{self.round}/a",
                "b": f"/quiz/image/{self.round}/b",
            }
            if self.phase == "revealed":
                t = out["tally"]
                right = t[pair.fake]
                out["answer"] = {
                    "fake": pair.fake,
                    "note": pair.note,
                    "room_correct": round(100 * right / t["total"], 1) if t["total"] else None,
                    "evidence": {
                        "a": self.evidence.get(pair.a.id),
                        "b": self.evidence.get(pair.b.id),
                    },
                    "baselines": BASELINES,
                    "baseline_note": BASELINE_NOTE,
                }
        return out
