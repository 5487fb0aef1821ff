"""Messages that carry an SDP have a larger size limit than the rest (a plenary subscription is big)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import add_participant, create_workshop
from tests.signaling.client import join


async def test_an_sdp_message_over_the_ordinary_limit_is_read_and_other_messages_are_not(
    client: TestClient[Any, Any],
) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana")
    sc = await join(client, ana["join_token"])
    limits = sc.welcome["limits"]
    assert limits["max_sdp_message_bytes"] > limits["max_message_bytes"]
    big_sdp = "v=0\r\n" + "a=x-filler:" + "0" * 100_000 + "\r\n"
    await sc.send({"type": "subscription_answer", "sdp": big_sdp, "request_id": 1})
    reply = await sc.wait_for("error", request_id=1)
    assert reply["code"] == "invalid_argument", reply  # read and judged: this room is a mesh
    await sc.send({"type": "chat", "text": "x" * 1000, "padding": "y" * 100_000, "request_id": 2})
    reply = await sc.wait_for("error", request_id=2)
    assert reply["code"] == "payload_too_large"
    huge = "v=0\r\n" + "a=x-filler:" + "0" * (limits["max_sdp_message_bytes"] + 10) + "\r\n"
    await sc.send({"type": "publish", "source": "camera", "sdp": huge, "request_id": 3})
    reply = await sc.wait_for("error", request_id=3)
    assert reply["code"] == "payload_too_large"
