"""Breakout assignment strategies: pure functions, no I/O, deterministic for a given seed.

Every strategy returns a mapping participant id -> room index. Pre-existing (manual) assignments are
kept as they are and the strategy places everyone else around them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["manual", "random", "balanced", "country_mixed", "self_select"]
STRATEGIES: tuple[Strategy, ...] = ("manual", "random", "balanced", "country_mixed", "self_select")
DEFAULT_ROLES: frozenset[str] = frozenset({"participant"})


@dataclass(frozen=True)
class Person:
    id: str
    country: str
    role: str = "participant"


def eligible(people: Iterable[Person], roles: Iterable[str] = DEFAULT_ROLES) -> list[Person]:
    """Who a strategy places: by default participants only (moderators and observers stay unless asked)."""
    allowed = set(roles)
    return [p for p in people if p.role in allowed]


def assign(
    strategy: Strategy,
    people: Sequence[Person],
    room_count: int,
    *,
    fixed: Mapping[str, int] | None = None,
    seed: int = 0,
) -> dict[str, int]:
    """Place `people` into `room_count` rooms. `fixed` assignments are kept; for `manual` and
    `self_select` nobody else is placed (self-select participants choose for themselves)."""
    if room_count < 1:
        raise ValueError("room_count must be at least 1")
    result = {pid: room for pid, room in (fixed or {}).items() if 0 <= room < room_count}
    rest = [p for p in people if p.id not in result]
    if strategy in ("manual", "self_select"):
        return result
    if strategy == "random":
        rest = list(rest)
        random.Random(seed).shuffle(rest)
        _fill_smallest(result, rest, room_count)
    elif strategy == "balanced":
        _fill_smallest(result, rest, room_count)
    elif strategy == "country_mixed":
        _country_mixed(result, rest, people, room_count, seed)
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    return result


def _sizes(result: Mapping[str, int], room_count: int) -> list[int]:
    sizes = [0] * room_count
    for room in result.values():
        sizes[room] += 1
    return sizes


def _fill_smallest(result: dict[str, int], rest: Sequence[Person], room_count: int) -> None:
    sizes = _sizes(result, room_count)
    for person in rest:
        room = min(range(room_count), key=lambda r: (sizes[r], r))
        result[person.id] = room
        sizes[room] += 1


def _country_mixed(
    result: dict[str, int], rest: Sequence[Person], everyone: Sequence[Person], room_count: int, seed: int
) -> None:
    """Largest delegations first, each member into the room with the fewest of its country, then the
    smallest room. With no fixed assignments this is a round-robin deal of people sorted by country,
    which gives every room as many distinct countries as possible (sum over countries of
    min(size, rooms)), spreads each delegation within one per room, and keeps sizes within one."""
    country_of = {p.id: p.country for p in everyone}
    sizes = _sizes(result, room_count)
    per_room: list[Counter[str]] = [Counter() for _ in range(room_count)]
    for pid, room in result.items():
        per_room[room][country_of.get(pid, "")] += 1
    rng = random.Random(seed)
    by_country: dict[str, list[Person]] = {}
    for person in rest:
        by_country.setdefault(person.country, []).append(person)
    countries = sorted(by_country, key=lambda c: (-len(by_country[c]), c))
    for country in countries:
        members = by_country[country]
        rng.shuffle(members)
        for person in members:
            room = min(range(room_count), key=lambda r: (per_room[r][country], sizes[r], r))
            result[person.id] = room
            sizes[room] += 1
            per_room[room][country] += 1


def distinct_countries(assignment: Mapping[str, int], people: Sequence[Person], room_count: int) -> int:
    """Sum over rooms of the number of distinct countries in it (what country_mixed maximises)."""
    country_of = {p.id: p.country for p in people}
    seen: list[set[str]] = [set() for _ in range(room_count)]
    for pid, room in assignment.items():
        seen[room].add(country_of[pid])
    return sum(len(s) for s in seen)


def can_choose(counts: Sequence[int], room: int, cap: int | None) -> bool:
    """Self-select: a room may be chosen while it is under its cap."""
    return 0 <= room < len(counts) and (cap is None or counts[room] < cap)
