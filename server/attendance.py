"""Attendance reports from visits: per person, per country and organisation, and a timeline. Pure.

A person's presence is the union of their visits (one room at a time; a move ends one visit and starts the next
at the same instant). A drop resumed within the grace period is part of the visit: the person counts as present
through it, as in the room, where their tile stayed. A drop that expired ends the visit at the drop. A visit still
open is counted up to `now`. The share of the scheduled time counts only presence between the workshop's start
and end.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

MAX_TIMELINE_POINTS = 2000


@dataclass(frozen=True)
class Visit:
    participant_id: uuid.UUID
    room_id: uuid.UUID
    room_name: str
    started_at: datetime
    ended_at: datetime | None
    ended_how: str | None
    drops: int


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    display_name: str
    country: str
    organisation: str
    role: str
    on_roster: bool = True


@dataclass(frozen=True)
class RoomTime:
    room_id: uuid.UUID
    room_name: str
    seconds: float


@dataclass
class PersonReport:
    person: Person
    first_join: datetime | None
    last_leave: datetime | None
    present_now: bool
    seconds_present: float
    seconds_in_schedule: float
    share: float
    drops: int
    visits: int
    rooms: list[RoomTime]


@dataclass
class GroupReport:
    key: str
    invited: int
    present: int
    present_min_share: int
    average_minutes: float


@dataclass
class TimelinePoint:
    at: datetime
    total: int
    by_country: dict[str, int]


@dataclass
class Report:
    scheduled_from: datetime
    scheduled_to: datetime
    min_share: float
    step_s: int
    now: datetime
    people: list[PersonReport]
    countries: list[GroupReport]
    organisations: list[GroupReport]
    timeline: list[TimelinePoint] = field(default_factory=list)


def _end(visit: Visit, now: datetime) -> datetime:
    return visit.ended_at if visit.ended_at is not None else max(now, visit.started_at)


def merge(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The union of intervals, as disjoint intervals in order (empty ones dropped)."""
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _seconds(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    return sum((end - start).total_seconds() for start, end in intervals)


def _clip(
    intervals: Iterable[tuple[datetime, datetime]], lo: datetime, hi: datetime
) -> list[tuple[datetime, datetime]]:
    return [(max(s, lo), min(e, hi)) for s, e in intervals if min(e, hi) > max(s, lo)]


def person_report(
    person: Person, visits: Sequence[Visit], *, scheduled: tuple[datetime, datetime], now: datetime
) -> PersonReport:
    spans = merge((v.started_at, _end(v, now)) for v in visits)
    in_schedule = _seconds(_clip(spans, *scheduled))
    length = (scheduled[1] - scheduled[0]).total_seconds()
    by_room: dict[uuid.UUID, list[tuple[datetime, datetime]]] = defaultdict(list)
    names: dict[uuid.UUID, str] = {}
    for v in visits:
        by_room[v.room_id].append((v.started_at, _end(v, now)))
        names.setdefault(v.room_id, v.room_name)
    rooms = [RoomTime(rid, names[rid], _seconds(merge(spans_))) for rid, spans_ in by_room.items()]
    rooms.sort(key=lambda r: (-r.seconds, r.room_name))
    present_now = any(v.ended_at is None for v in visits)
    return PersonReport(
        person=person,
        first_join=min((v.started_at for v in visits), default=None),
        last_leave=None if present_now or not visits else max(_end(v, now) for v in visits),
        present_now=present_now,
        seconds_present=_seconds(spans),
        seconds_in_schedule=in_schedule,
        share=in_schedule / length if length > 0 else 0.0,
        drops=sum(v.drops for v in visits),
        visits=len(visits),
        rooms=rooms,
    )


def group_reports(people: Sequence[PersonReport], key: str, min_share: float) -> list[GroupReport]:
    groups: dict[str, list[PersonReport]] = defaultdict(list)
    for p in people:
        groups[getattr(p.person, key)].append(p)
    out = []
    for name, members in sorted(groups.items()):
        present = [p for p in members if p.visits > 0]
        out.append(
            GroupReport(
                key=name,
                invited=sum(1 for p in members if p.person.on_roster),
                present=len(present),
                present_min_share=sum(1 for p in present if p.share >= min_share),
                average_minutes=(sum(p.seconds_present for p in present) / len(present) / 60) if present else 0.0,
            )
        )
    return out


def timeline(
    people: Sequence[Person], visits: Sequence[Visit], *, start: datetime, end: datetime, step_s: int, now: datetime
) -> list[TimelinePoint]:
    """Who is present at each step, by country: at start, start + step, ... up to end."""
    country = {p.id: p.country for p in people}
    countries = sorted({p.country for p in people})
    spans = [(v.participant_id, v.started_at, _end(v, now)) for v in visits]
    points = []
    at = start
    step = timedelta(seconds=step_s)
    while at <= end:
        present = {pid for pid, s, e in spans if s <= at < e}
        by_country = dict.fromkeys(countries, 0)
        for pid in present:
            c = country.get(pid)
            if c is not None:
                by_country[c] += 1
        points.append(TimelinePoint(at=at, total=len(present), by_country=by_country))
        at += step
    return points


def timeline_range(
    visits: Sequence[Visit], scheduled: tuple[datetime, datetime], now: datetime, step_s: int
) -> tuple[datetime, datetime]:
    """From the earlier of the scheduled start and the first join, to the later of the scheduled end and the last
    leave (or now, while someone is in), on a grid of steps from the scheduled start."""
    first = min([scheduled[0], *(v.started_at for v in visits)])
    steps_before = -(-(scheduled[0] - first).total_seconds() // step_s)  # ceiling
    start = scheduled[0] - timedelta(seconds=steps_before * step_s)
    end = max([scheduled[1], *(_end(v, now) for v in visits)])
    return start, end


def build_report(
    people: Sequence[Person],
    visits: Sequence[Visit],
    *,
    scheduled: tuple[datetime, datetime],
    min_share: float,
    step_s: int,
    now: datetime,
) -> Report:
    """The whole report. `step_s` must leave at most MAX_TIMELINE_POINTS points (see `timeline_points`)."""
    by_person: dict[uuid.UUID, list[Visit]] = defaultdict(list)
    for v in visits:
        by_person[v.participant_id].append(v)
    reports = [person_report(p, by_person.get(p.id, []), scheduled=scheduled, now=now) for p in people]
    reports.sort(key=lambda r: (r.person.country, r.person.organisation, r.person.display_name, str(r.person.id)))
    start, end = timeline_range(visits, scheduled, now, step_s)
    return Report(
        scheduled_from=scheduled[0],
        scheduled_to=scheduled[1],
        min_share=min_share,
        step_s=step_s,
        now=now,
        people=reports,
        countries=group_reports(reports, "country", min_share),
        organisations=group_reports(reports, "organisation", min_share),
        timeline=timeline(people, visits, start=start, end=end, step_s=step_s, now=now),
    )


def timeline_points(visits: Sequence[Visit], scheduled: tuple[datetime, datetime], now: datetime, step_s: int) -> int:
    start, end = timeline_range(visits, scheduled, now, step_s)
    return int((end - start).total_seconds() // step_s) + 1
