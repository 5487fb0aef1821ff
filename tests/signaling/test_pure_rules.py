"""The pure rules of signalling: token bucket, TURN credentials, politeness, version negotiation, rooms."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.protocol import SUPPORTED_VERSIONS, PeerState, RoomInfo, negotiate
from signaling.ratelimit import TokenBucket
from signaling.rooms import Member, Profile, Room, is_polite
from signaling.turn import turn_credentials, verify_turn_credentials

# No example database on disk (it would litter the work tree); no deadline (a slow CI box is not a failure).
PURE = settings(database=None, deadline=None, max_examples=300)

# Token bucket -------------------------------------------------------------------------------------

rates = st.floats(min_value=0.01, max_value=1000, allow_nan=False, allow_infinity=False)
bursts = st.integers(min_value=1, max_value=500)
# Gaps between consecutive takes (a monotonic clock never goes back).
gaps = st.lists(st.floats(min_value=0, max_value=5, allow_nan=False, allow_infinity=False), max_size=300)
starts = st.one_of(st.just(0.0), st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False))


@PURE
@given(rate=rates, burst=bursts, start=starts, gaps=gaps)
def test_bucket_never_allows_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, start: float, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate=rate, burst=burst)
    now = start
    allowed = 0
    for gap in [0.0, *gaps]:
        now += gap
        allowed += bucket.take(now)
        assert allowed <= burst + rate * (now - start) + 1e-6


@PURE
@given(rate=rates, burst=bursts, start=starts)
def test_a_fresh_bucket_allows_exactly_burst_at_once(rate: float, burst: int, start: float) -> None:
    bucket = TokenBucket(rate=rate, burst=burst)
    results = [bucket.take(start) for _ in range(burst + 5)]
    assert results == [True] * burst + [False] * 5


@PURE
@given(rate=rates, burst=bursts, start=starts, steps=st.integers(min_value=1, max_value=100))
def test_a_sender_that_keeps_to_the_rate_is_never_refused(rate: float, burst: int, start: float, steps: int) -> None:
    """Even after draining the burst, one message every 1/rate seconds always goes through
    (whatever the clock's origin: a test clock may start at 0)."""
    bucket = TokenBucket(rate=rate, burst=burst)
    for _ in range(burst):
        assert bucket.take(start)
    assert not bucket.take(start)
    now = start
    for _ in range(steps):
        now += 1.0001 / rate
        assert bucket.take(now)


@PURE
@given(rate=rates, burst=bursts, start=starts, idle=st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_saved_up_tokens_are_capped_at_burst(rate: float, burst: int, start: float, idle: float) -> None:
    bucket = TokenBucket(rate=rate, burst=burst)
    assert bucket.take(start)
    later = start + idle
    allowed = sum(bucket.take(later) for _ in range(burst + 10))
    assert allowed <= burst


def test_bucket_cost_above_burst_is_never_allowed() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    assert not bucket.take(100.0, cost=4)
    assert bucket.take(100.0, cost=3)
    assert not bucket.take(100.0)
    assert bucket.take(100.1 + 1e-9)


# TURN credentials ---------------------------------------------------------------------------------


def test_turn_credentials_match_coturn_use_auth_secret() -> None:
    """A known answer, computed with `printf '1700003600:alice' | openssl dgst -sha1 -hmac north-sea-secret
    -binary | base64`: what coturn computes for the same secret."""
    username, password = turn_credentials("north-sea-secret", "alice", now_s=1_700_000_000, ttl_s=3600)
    assert username == "1700003600:alice"
    assert password == "XNu2e1NVrQEGzUB75NhB3SrIHpE="


secrets_ = st.text(min_size=1, max_size=64)
user_ids = st.text(min_size=1, max_size=64)
now_values = st.integers(min_value=0, max_value=4_000_000_000)
ttls = st.integers(min_value=60, max_value=7 * 24 * 3600)


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@PURE
@given(secret=secrets_, user=user_ids, now=now_values, ttl=ttls, later=st.integers(min_value=0))
def test_turn_credentials_verify_until_expiry_and_not_after(
    secret: str, user: str, now: int, ttl: int, later: int
) -> None:
    if not (_encodable(secret) and _encodable(user)):
        return
    username, password = turn_credentials(secret, user, now_s=now, ttl_s=ttl)
    expiry, _, rest = username.partition(":")
    assert int(expiry) == now + ttl
    assert rest == user
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(password) == digest
    check_at = now + later % (ttl + 1)
    assert verify_turn_credentials(secret, username, password, now_s=check_at)
    assert not verify_turn_credentials(secret, username, password, now_s=now + ttl + 1)


@PURE
@given(secret=secrets_, other=secrets_, user=user_ids, now=now_values)
def test_turn_credentials_of_another_secret_or_user_do_not_verify(secret: str, other: str, user: str, now: int) -> None:
    if not (_encodable(secret) and _encodable(other) and _encodable(user)) or secret == other:
        return
    username, password = turn_credentials(secret, user, now_s=now, ttl_s=3600)
    assert not verify_turn_credentials(other, username, password, now_s=now)
    forged = f"{now + 10 * 3600}:{user}"  # a later expiry with the old password
    assert not verify_turn_credentials(secret, forged, password, now_s=now)


@PURE
@given(username=st.text(max_size=80), password=st.text(max_size=80), now=now_values)
def test_verify_turn_credentials_refuses_garbage_without_raising(username: str, password: str, now: int) -> None:
    """Whatever a client sends (non-ASCII, lone surrogates, no colon), the answer is a bool, never an exception."""
    assert verify_turn_credentials("secret", username, password, now_s=now) in (True, False)


@pytest.mark.parametrize(
    "username",
    ["", ":", "alice", "-1:alice", "abc:alice", " 1:alice", "1.5:alice", "0x10:alice"],
)
def test_verify_turn_credentials_refuses_malformed_usernames(username: str) -> None:
    password = base64.b64encode(hmac.new(b"s", username.encode(), hashlib.sha1).digest()).decode()
    assert not verify_turn_credentials("s", username, password, now_s=0)


# Politeness ---------------------------------------------------------------------------------------

peer_ids = st.text(min_size=1, max_size=64)


@PURE
@given(a=peer_ids, b=peer_ids)
def test_exactly_one_side_of_each_pair_is_polite(a: str, b: str) -> None:
    if a == b:
        assert not is_polite(a, b)
        return
    assert is_polite(a, b) != is_polite(b, a)


@PURE
@given(ids=st.lists(st.uuids().map(str), min_size=2, max_size=30, unique=True))
def test_politeness_is_a_strict_order_so_there_are_no_cycles(ids: list[str]) -> None:
    """In a mesh every peer can compute every pair's roles; they form a total order (no A>B>C>A)."""
    for a, b, c in itertools.permutations(ids[:6], 3):
        if is_polite(a, b) and is_polite(b, c):
            assert is_polite(a, c)
    polite_towards = {a: sum(is_polite(a, b) for b in ids if b != a) for a in ids}
    assert sorted(polite_towards.values()) == list(range(len(ids)))


def _member(pid: str, *, hidden: bool = False) -> Member:
    return Member(
        id=pid,
        workshop_id="w",
        profile=Profile(display_name=pid, country="PT", organisation="", role="participant"),
        room_id="r",
        resume_secret="s",
        hidden=hidden,
    )


@PURE
@given(ids=st.lists(st.uuids().map(str), min_size=1, max_size=20, unique=True), hidden=st.integers(0, 3))
def test_room_roster_never_contains_the_receiver_nor_hidden_members_and_politeness_is_mirrored(
    ids: list[str], hidden: int
) -> None:
    room = Room(info=RoomInfo(id="r", workshop_id="w", name="Plenary", kind="plenary", media="mesh", capacity=100))
    for pid in ids:
        room.members[pid] = _member(pid)
    for n in range(hidden):
        room.members[f"recorder-{n}"] = _member(f"recorder-{n}", hidden=True)
    views = {pid: {p.id: p.polite for p in room.peers_for(pid)} for pid in ids}
    for pid, view in views.items():
        assert set(view) == set(ids) - {pid}
        for other, polite in view.items():
            # the receiver is polite towards `other` exactly when `other` is not polite towards the receiver
            assert polite != views[other][pid]
    assert len(room.roster()) == len(ids)


def test_room_is_full_counts_visible_members_only() -> None:
    room = Room(info=RoomInfo(id="r", workshop_id="w", name="B", kind="breakout", media="mesh", capacity=2))
    room.members["rec"] = _member("rec", hidden=True)
    room.members["a"] = _member("a")
    assert not room.is_full()
    room.members["b"] = _member("b")
    assert room.is_full()


def test_a_detached_member_is_shown_as_reconnecting_with_its_state() -> None:
    m = _member("a")
    m.state = PeerState(audio=False, hand=True)
    peer = m.seen_by("b")
    assert peer.reconnecting
    assert peer.polite == is_polite("b", "a")
    assert peer.state.hand and not peer.state.audio


# Version negotiation ------------------------------------------------------------------------------


@PURE
@given(offered=st.lists(st.integers(min_value=-(2**31), max_value=2**31), max_size=16))
def test_negotiate_picks_the_highest_common_version_or_none(offered: list[int]) -> None:
    common = set(offered) & set(SUPPORTED_VERSIONS)
    chosen = negotiate(offered)
    if not common:
        assert chosen is None
    else:
        assert chosen in common
        assert all(chosen >= v for v in common)
    assert negotiate(list(reversed(offered))) == chosen
    assert negotiate(offered + offered) == chosen


def test_negotiate_examples() -> None:
    assert negotiate([1]) == 1
    assert negotiate([99, 1, 0]) == 1
    assert negotiate([99]) is None
    assert negotiate([]) is None
