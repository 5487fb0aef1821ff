"""GET /metrics: Prometheus text that prometheus-client's own parser reads, and counters that move."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.metrics import METRICS
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, bearer, create_workshop
from tests.signaling.client import join

Client = TestClient[Any, Any]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: Client, headers: dict[str, str] | None = None) -> Samples:
    resp = await client.get("/metrics", headers=headers or {})
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_parse_and_their_counters_move_with_a_join_a_relay_and_an_error(client: Client) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana")
    ben = await add_participant(client, workshop["id"], display_name="Ben", country="DE")
    before = await scrape(client)
    assert value(before, "roundtable_connections") == 0

    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    await a.send({"type": "offer", "to": b.id, "sdp": "v=0\r\n", "request_id": 1})
    assert (await b.wait_for("offer"))["from"] == a.id
    await a.wait_for("ack", request_id=1)
    await a.send({"type": "offer", "to": "nobody", "sdp": "v=0\r\n", "request_id": 2})
    assert (await a.wait_for("error", request_id=2))["code"] == "not_found"
    resp = await client.get("/api/v1/workshops/00000000-0000-0000-0000-000000000000", headers=ADMIN)
    assert resp.status == 404

    after = await scrape(client)
    assert value(after, "roundtable_joins_total") - value(before, "roundtable_joins_total") == 2
    assert value(after, "roundtable_join_seconds_count") - value(before, "roundtable_join_seconds_count") == 2
    assert value(after, "roundtable_relayed_messages_total", type="offer") == 1
    assert value(after, "roundtable_relayed_bytes_total", type="offer") > len("v=0")
    assert value(after, "roundtable_errors_total", transport="ws", code="not_found") == 1
    assert value(after, "roundtable_errors_total", transport="http", code="not_found") == 1
    assert value(after, "roundtable_connections") == 2
    assert value(after, "roundtable_rooms", kind="plenary") == 1
    assert value(after, "roundtable_members", kind="connected") == 2
    assert value(after, "roundtable_recordings", state="recording") == 0
    assert value(after, "roundtable_compositions", state="queued") == 0
    assert value(after, "roundtable_composers") == 0
    assert value(after, "roundtable_db_pool_max") >= 1
    assert value(after, "roundtable_resumes_total") == 0
    assert ("roundtable_sfu_up", ()) in after  # 0 here: the test app runs no SFU

    resumed = await join(client, ana["join_token"], resume=a.welcome["resume"])
    assert resumed.welcome["resumed"] is True
    assert value(await scrape(client), "roundtable_resumes_total") == 1
    for sc in (a, b, resumed):
        await sc.close()


async def test_each_app_counts_in_its_own_registry(client: Client, settings: Any, aiohttp_client: Any) -> None:
    other: Client = await aiohttp_client(create_app(settings))
    client.app[METRICS].joined(seconds=0.01, resumed=False)
    assert value(await scrape(client), "roundtable_joins_total") == 1
    assert value(await scrape(other), "roundtable_joins_total") == 0


@pytest.mark.parametrize(
    "given, status", [(None, 401), ("wrong-token-0123456789", 401), ("metrics-token-0123456789", 200)]
)
async def test_a_metrics_token_keeps_metrics_for_whoever_has_it(
    database_url: str, tmp_path: Any, aiohttp_client: Any, given: str | None, status: int
) -> None:
    settings = make_settings(database_url, tmp_path / "var", metrics_token="metrics-token-0123456789")
    client: Client = await aiohttp_client(create_app(settings))
    resp = await client.get("/metrics", headers=bearer(given) if given else {})
    assert resp.status == status
