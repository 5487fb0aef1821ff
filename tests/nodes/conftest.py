"""The bus server of the node tests: ROUNDTABLE_TEST_BUS_URL when it is set and answers, else a nats-server of
their own on the namespace's 127.0.0.1 (the host's 127.0.0.1:4222 cannot be reached from in there: tests/netns.py),
else a failure that says what is missing."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nodes.nats_server import NatsServer, answers, find_binary

MISSING = (
    "no bus server for the node tests: ROUNDTABLE_TEST_BUS_URL is {why}, and nats-server is not installed "
    "(Debian's nats-server package; `make test` installs it through tests/ensure_media_parts.sh)"
)


def _own_server(log_dir: Path, why: str) -> NatsServer:
    binary = find_binary()
    if binary is None:
        pytest.fail(MISSING.format(why=why))
    server = NatsServer(binary, log_dir)
    server.start()
    return server


@pytest.fixture(scope="session")
def bus_url() -> Iterator[str]:
    """A NATS server shared by the session's tests (they never kill it: see `nats_server` for that)."""
    external = os.environ.get("ROUNDTABLE_TEST_BUS_URL")
    if external and answers(external):
        yield external
        return
    why = f"{external} (which does not answer from the tests' network)" if external else "unset"
    server = _own_server(Path(tempfile.mkdtemp(prefix="roundtable-test-nats-")), why)
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test alone, which it may kill and restart."""
    server = _own_server(tmp_path, "not used for a server a test kills")
    try:
        yield server
    finally:
        server.kill()
