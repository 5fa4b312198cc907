"""A clock tests move by hand: no test sleeps to wait out a window."""

from __future__ import annotations


class FakeClock:
    def __init__(self, start: float = 1_795_000_000.0) -> None:
        self.current = start
        self.mono = 1000.0

    def now(self) -> float:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.current += seconds
        self.mono += seconds
