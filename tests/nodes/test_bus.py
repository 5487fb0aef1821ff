"""The bus: the same contract in process and on a real NATS server, across two connections (two nodes)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.bus_nats import NatsBus
from signaling.bus import (
    Bus,
    BusTimeout,
    BusUnavailable,
    InProcessBus,
    Message,
    NoResponders,
    check_subject,
    subject_matches,
)
from tests.nodes.nats_server import NatsServer

WAIT_S = 5.0


@pytest.fixture(params=["in_process", "nats"])
async def two_buses(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bus, Bus]]:
    """Two nodes' buses: one in-process bus seen by both, or two connections to the same NATS server."""
    if request.param == "in_process":
        bus = InProcessBus()
        yield bus, bus
        await bus.close()
        return
    url = request.getfixturevalue("bus_url")
    async with AsyncExitStack() as stack:
        a = await NatsBus.connect(url, name="node-a")
        stack.push_async_callback(a.close)
        b = await NatsBus.connect(url, name="node-b")
        stack.push_async_callback(b.close)
        yield a, b


@pytest.fixture
def rt() -> str:
    """This test's own subject root: a shared bus server (ROUNDTABLE_TEST_BUS_URL) may carry other runs' tests."""
    return f"rt{uuid.uuid4().hex[:10]}"


async def _next(sub: AsyncIterator[Message]) -> Message:
    return await asyncio.wait_for(anext(sub), WAIT_S)


async def test_a_message_published_on_one_node_reaches_subscribers_on_another(
    two_buses: tuple[Bus, Bus], rt: str
) -> None:
    a, b = two_buses
    exact = await b.subscribe(f"{rt}.workshop.w1.room")
    one_token = await b.subscribe(f"{rt}.workshop.*.room")
    the_rest = await b.subscribe(f"{rt}.workshop.>")
    elsewhere = await b.subscribe(f"{rt}.workshop.w2.room")

    await a.publish(f"{rt}.workshop.w1.room", b"hello")
    for sub in (exact, one_token, the_rest):
        message = await _next(aiter(sub))
        assert (message.subject, message.data, message.reply) == (f"{rt}.workshop.w1.room", b"hello", None)
    # Not for w2: the next thing its subscriber sees is what is published to it.
    await a.publish(f"{rt}.workshop.w2.room", b"second")
    assert (await _next(aiter(elsewhere))).data == b"second"


async def test_a_handler_receives_one_message_at_a_time_in_order(two_buses: tuple[Bus, Bus], rt: str) -> None:
    a, b = two_buses
    seen: list[bytes] = []
    running = 0
    overlapped = False
    done = asyncio.Event()

    async def handler(message: Message) -> None:
        nonlocal running, overlapped
        running += 1
        overlapped = overlapped or running > 1
        await asyncio.sleep(0)  # give another delivery the chance to overlap, if the bus allowed it
        seen.append(message.data)
        running -= 1
        if len(seen) == 20:
            done.set()

    await b.subscribe(f"{rt}.ordered", handler)
    for i in range(20):
        await a.publish(f"{rt}.ordered", str(i).encode())
    await asyncio.wait_for(done.wait(), WAIT_S)
    assert seen == [str(i).encode() for i in range(20)]
    assert not overlapped


async def test_a_failing_handler_does_not_end_its_subscription(
    two_buses: tuple[Bus, Bus], rt: str, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = two_buses
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(message: Message) -> None:
        if message.data == b"bad":
            raise ValueError("a handler bug")
        got.put_nowait(message.data)

    await b.subscribe(f"{rt}.fragile", handler)
    await a.publish(f"{rt}.fragile", b"bad")
    await a.publish(f"{rt}.fragile", b"good")
    assert await asyncio.wait_for(got.get(), WAIT_S) == b"good"
    assert f"bus handler of {rt}.fragile failed" in caplog.text


async def test_a_request_gets_the_reply_of_the_node_that_serves_it(two_buses: tuple[Bus, Bus], rt: str) -> None:
    a, b = two_buses

    async def serve(message: Message) -> None:
        await b.reply(message, b"owner says: " + message.data)

    await b.subscribe(f"{rt}.node.b.cmd", serve)
    assert await a.request(f"{rt}.node.b.cmd", b"move", timeout_s=WAIT_S) == b"owner says: move"


async def test_a_request_nobody_serves_fails_at_once(two_buses: tuple[Bus, Bus], rt: str) -> None:
    a, _b = two_buses
    with pytest.raises(NoResponders):
        await a.request(f"{rt}.node.gone.cmd", b"move", timeout_s=WAIT_S)


async def test_a_request_left_unanswered_times_out(two_buses: tuple[Bus, Bus], rt: str) -> None:
    a, b = two_buses
    heard = asyncio.Event()

    async def ignore(message: Message) -> None:
        heard.set()

    await b.subscribe(f"{rt}.node.mute.cmd", ignore)
    with pytest.raises(BusTimeout):
        await a.request(f"{rt}.node.mute.cmd", b"anyone?", timeout_s=0.2)
    assert heard.is_set()


async def test_an_unsubscribed_subscription_ends_and_hears_nothing_more(two_buses: tuple[Bus, Bus], rt: str) -> None:
    a, b = two_buses
    gone = await b.subscribe(f"{rt}.brief")
    kept = await b.subscribe(f"{rt}.brief")
    await gone.unsubscribe()
    await a.publish(f"{rt}.brief", b"after")
    assert (await _next(aiter(kept))).data == b"after"
    with pytest.raises(StopAsyncIteration):
        await _next(aiter(gone))


async def test_a_slow_subscriber_loses_the_newest_messages_and_counts_them() -> None:
    bus = InProcessBus()
    try:
        sub = await bus.subscribe("rt.flood", queue_size=2)
        for i in range(5):
            await bus.publish("rt.flood", str(i).encode())  # a publish never waits for a subscriber
        assert sub.dropped == 3
        assert [(await _next(aiter(sub))).data for _ in range(2)] == [b"0", b"1"]
    finally:
        await bus.close()


async def test_a_closed_bus_refuses_to_publish() -> None:
    bus = InProcessBus()
    await bus.close()
    assert not bus.connected
    with pytest.raises(BusUnavailable):
        await bus.publish("rt.any", b"")


def test_subjects_are_dot_separated_tokens_and_wildcards_match_as_in_nats() -> None:
    check_subject("rt.workshop.0b0e-11.room", wildcards=False)
    check_subject("rt.*.room.>", wildcards=True)
    for bad in ("", "rt..x", "rt.x ", "rt.>.x", "rt.*"):
        with pytest.raises(ValueError):
            check_subject(bad, wildcards=bad == "rt.>.x")
    assert subject_matches("rt.*.room", "rt.w1.room")
    assert not subject_matches("rt.*.room", "rt.w1.room.extra")
    assert subject_matches("rt.>", "rt.w1.room")
    assert not subject_matches("rt.>", "rt")
    assert not subject_matches("rt.w1", "rt.w2")


_tokens = st.lists(st.sampled_from(["a", "b", "rt", "w-1"]), min_size=1, max_size=4)


@given(
    pattern=st.builds(
        lambda tokens, wild, tail: (
            [("*" if w else t) for t, w in zip(tokens, wild, strict=False)] + ([">"] if tail else [])
        ),
        _tokens,
        st.lists(st.booleans(), min_size=4, max_size=4),
        st.booleans(),
    ),
    subject=_tokens,
)
def test_wildcards_match_exactly_what_nats_would(pattern: list[str], subject: list[str]) -> None:
    # The oracle: `*` one token, a final `>` one or more tokens, anything else itself.
    regex = r"\.".join("[^.]+" if t == "*" else ".+" if t == ">" else re.escape(t) for t in pattern)
    expected = re.fullmatch(regex, ".".join(subject)) is not None
    assert subject_matches(".".join(pattern), ".".join(subject)) == expected


# Reconnects (a real server killed and restarted) ----------------------------------------------------------------


def _flag() -> tuple[asyncio.Event, Callable[[], None]]:
    event = asyncio.Event()
    return event, event.set


async def test_after_the_bus_server_restarts_subscriptions_come_back_and_the_gap_is_lost(
    nats_server: NatsServer,
) -> None:
    async with AsyncExitStack() as stack:
        a = await NatsBus.connect(nats_server.url, name="node-a", reconnect_wait_s=0.05)
        stack.push_async_callback(a.close)
        b = await NatsBus.connect(nats_server.url, name="node-b", reconnect_wait_s=0.05)
        stack.push_async_callback(b.close)
        a_down, on_a_down = _flag()
        b_down, on_b_down = _flag()
        a_up, on_a_up = _flag()
        b_up, on_b_up = _flag()
        a.on_disconnect(on_a_down)
        b.on_disconnect(on_b_down)
        a.on_reconnect(on_a_up)
        b.on_reconnect(on_b_up)

        room = await b.subscribe("rt.workshop.w1.room")

        async def serve(message: Message) -> None:
            await b.reply(message, b"pong")

        await b.subscribe("rt.node.b.cmd", serve)
        await a.publish("rt.workshop.w1.room", b"before")
        assert (await _next(aiter(room))).data == b"before"

        nats_server.kill()
        await asyncio.wait_for(a_down.wait(), WAIT_S)
        await asyncio.wait_for(b_down.wait(), WAIT_S)
        assert not a.connected and not b.connected
        # In the gap a publish fails at once (the caller knows it was not sent) and so does a request.
        with pytest.raises(BusUnavailable):
            await a.publish("rt.workshop.w1.room", b"in the gap")
        with pytest.raises(BusUnavailable):
            await a.request("rt.node.b.cmd", b"ping", timeout_s=WAIT_S)

        nats_server.start()  # the same port: what a client sees when its server comes back
        await asyncio.wait_for(a_up.wait(), WAIT_S)
        await asyncio.wait_for(b_up.wait(), WAIT_S)
        assert a.connected and b.connected
        # The subscriptions were sent again by the client: no caller had to subscribe anew.
        await a.publish("rt.workshop.w1.room", b"after")
        assert (await _next(aiter(room))).data == b"after"  # "in the gap" was never delivered: at most once
        assert await a.request("rt.node.b.cmd", b"ping", timeout_s=WAIT_S) == b"pong"


async def test_a_bus_that_does_not_answer_at_start_fails_the_connect_without_showing_credentials(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = nats_server.url.replace("nats://", "nats://roundtable:s3cret-password@")
    nats_server.kill()
    with pytest.raises(BusUnavailable, match="did not answer") as failed:
        await NatsBus.connect(url, reconnect_wait_s=0.05, connect_timeout_s=0.5)
    assert f"127.0.0.1:{nats_server.port}" in failed.value.message
    assert "s3cret" not in failed.value.message and "s3cret" not in caplog.text


async def test_a_bus_server_that_stops_answering_is_noticed_by_its_pings_and_rejoined_when_it_answers_again(
    nats_server: NatsServer, rt: str
) -> None:
    # A paused server keeps its connections open: only unanswered pings tell (the failure mode where a subscription
    # dies silently). Pings every 0.1 s, two outstanding at most.
    async with AsyncExitStack() as stack:
        bus = await NatsBus.connect(
            nats_server.url, ping_interval_s=0.1, max_outstanding_pings=2, reconnect_wait_s=0.05, connect_timeout_s=1
        )
        stack.push_async_callback(bus.close)
        down, on_down = _flag()
        up, on_up = _flag()
        bus.on_disconnect(on_down)
        bus.on_reconnect(on_up)
        sub = await bus.subscribe(f"{rt}.watched")
        nats_server.pause()
        try:
            await asyncio.wait_for(down.wait(), WAIT_S)
            assert not bus.connected
        finally:
            nats_server.resume()
        await asyncio.wait_for(up.wait(), WAIT_S)
        await bus.publish(f"{rt}.watched", b"still here")
        assert (await _next(aiter(sub))).data == b"still here"
