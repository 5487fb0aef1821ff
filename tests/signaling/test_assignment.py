"""Property tests of the pure breakout assignment rules."""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.assignment import Person, assign, can_choose, distinct_countries, eligible

COUNTRIES = ["AT", "BE", "DE", "FR", "PT", "PL", "SE", "ES"]


@st.composite
def rosters(draw: st.DrawFn, max_people: int = 40) -> list[Person]:
    n = draw(st.integers(min_value=0, max_value=max_people))
    countries = draw(st.lists(st.sampled_from(COUNTRIES), min_size=n, max_size=n))
    return [Person(id=f"p{i:03d}", country=c) for i, c in enumerate(countries)]


@given(rosters(), st.integers(1, 12), st.sampled_from(["random", "balanced", "country_mixed"]), st.integers(0, 99))
def test_every_participant_is_in_exactly_one_room_and_sizes_differ_by_at_most_one(
    people: list[Person], rooms: int, strategy: str, seed: int
) -> None:
    result = assign(strategy, people, rooms, seed=seed)  # type: ignore[arg-type]
    assert set(result) == {p.id for p in people}
    assert all(0 <= r < rooms for r in result.values())
    sizes = Counter(result.values())
    counts = [sizes.get(r, 0) for r in range(rooms)]
    assert max(counts) - min(counts) <= 1


@given(rosters(), st.integers(1, 10), st.integers(0, 99))
def test_country_mixed_spreads_each_delegation_evenly(people: list[Person], rooms: int, seed: int) -> None:
    result = assign("country_mixed", people, rooms, seed=seed)
    for country in {p.country for p in people}:
        per_room = Counter(result[p.id] for p in people if p.country == country)
        counts = [per_room.get(r, 0) for r in range(rooms)]
        assert max(counts) - min(counts) <= 1, (country, counts)


def _brute_force_best(people: list[Person], rooms: int) -> int:
    """The most distinct countries per room (summed) over every balanced assignment."""
    n = len(people)
    best = 0
    for combo in itertools.product(range(rooms), repeat=n):
        sizes = Counter(combo)
        counts = [sizes.get(r, 0) for r in range(rooms)]
        if max(counts) - min(counts) > 1:
            continue
        placed = {p.id: r for p, r in zip(people, combo, strict=True)}
        best = max(best, distinct_countries(placed, people, rooms))
    return best


@settings(max_examples=60, deadline=None)
@given(rosters(max_people=7), st.integers(1, 3), st.integers(0, 9))
def test_country_mixed_reaches_the_brute_force_optimum_on_small_cases(
    people: list[Person], rooms: int, seed: int
) -> None:
    result = assign("country_mixed", people, rooms, seed=seed)
    assert distinct_countries(result, people, rooms) == _brute_force_best(people, rooms)


@given(rosters(), st.integers(2, 6), st.data())
def test_fixed_assignments_are_kept_and_others_are_placed_around_them(
    people: list[Person], rooms: int, data: st.DataObject
) -> None:
    fixed_people = data.draw(st.lists(st.sampled_from(people), unique=True) if people else st.just([]))
    fixed = {p.id: data.draw(st.integers(0, rooms - 1)) for p in fixed_people}
    for strategy in ("random", "balanced", "country_mixed", "manual", "self_select"):
        result = assign(strategy, people, rooms, fixed=fixed)  # type: ignore[arg-type]
        assert all(result[pid] == room for pid, room in fixed.items())
        if strategy in ("manual", "self_select"):
            assert set(result) == set(fixed)
        else:
            assert set(result) == {p.id for p in people}


def test_moderators_and_observers_are_not_assigned_unless_asked() -> None:
    people = [
        Person("a", "DE", "participant"),
        Person("b", "FR", "moderator"),
        Person("c", "PT", "observer"),
        Person("d", "PL", "organiser"),
    ]
    assert [p.id for p in eligible(people)] == ["a"]
    assert [p.id for p in eligible(people, ["participant", "observer"])] == ["a", "c"]


@given(st.lists(st.integers(0, 5), min_size=1, max_size=6), st.integers(0, 7), st.none() | st.integers(1, 5))
def test_self_select_respects_the_cap(counts: list[int], room: int, cap: int | None) -> None:
    allowed = can_choose(counts, room, cap)
    if room >= len(counts):
        assert not allowed
    elif cap is None:
        assert allowed
    else:
        assert allowed == (counts[room] < cap)
