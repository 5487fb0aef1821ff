"""A token bucket: `rate` tokens a second, at most `burst` saved up. Pure; the clock is passed in."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float
    burst: int
    tokens: float = field(init=False)
    stamp: float | None = field(default=None, init=False)  # None until the first take: 0.0 is a valid time

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float, cost: float = 1.0) -> bool:
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False
