"""Faults of a source's sends, drawn from a seeded generator so a run can be replayed: an event
lost (an ApiServerSource only logs a failed send; a PingSource's tick can be missed) or
delivered twice (delivery is at least once)."""

from __future__ import annotations

import random
import threading
from collections import Counter


class Faults:
    def __init__(self, seed: int = 0, lost: float = 0.0, twice: float = 0.0) -> None:
        if lost < 0 or twice < 0 or lost + twice > 1:
            raise ValueError("lost and twice are probabilities whose sum is at most 1")
        self.lost, self.twice = lost, twice
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        """How many source events were sent once, lost, or sent twice."""

    def copies(self) -> int:
        """How many times to send the next source event: 0, 1 or 2."""
        with self._lock:
            draw = self._random.random()
            outcome = "lost" if draw < self.lost else "twice" if draw < self.lost + self.twice else "once"
            self.counts[outcome] += 1
        return {"lost": 0, "once": 1, "twice": 2}[outcome]
