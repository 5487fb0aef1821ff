"""The command port (signaling/commands.py): what the edges may ask of live rooms, answered with plain data, and a
command naming one workshop never touches another's rooms or members. Component test with fakes of our own ports;
the HTTP side is covered by the API tests that go through it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from signaling.commands import LiveMember, LocalRoomCommands
from signaling.protocol import ChatMessage, Hello, RoomInfo, Sender
from signaling.rooms import Profile
from signaling.service import Attendance, HubPorts, Identity, SignalingConfig, SignalingService

ROOMS = {
    "w1": RoomInfo(id="r1", workshop_id="w1", name="Plenary", kind="plenary", media="mesh", capacity=10),
    "w2": RoomInfo(id="r2", workshop_id="w2", name="Plenary", kind="plenary", media="mesh", capacity=10),
}
BREAKOUT = RoomInfo(id="b1", workshop_id="w1", name="Room 1", kind="breakout", media="mesh", capacity=10)
PEOPLE = {"ana": "w1", "ben": "w1", "olga": "w2"}
BY = Sender(id=None, display_name="Admin")


class Directory:
    async def authenticate(self, token: str) -> Identity:
        workshop = PEOPLE[token]
        return Identity(token, workshop, Profile(token.title(), "PT", "", "participant"), room=ROOMS[workshop])

    async def assigned_room(self, identity: Identity) -> RoomInfo:
        return ROOMS[identity.workshop_id]

    def still_valid(self, identity: Identity) -> bool:
        return True


class NoStore:
    def record_attendance(self, event: Attendance) -> None:
        pass

    def attendance_congested(self) -> bool:
        return False

    async def save_chat(self, **_: Any) -> ChatMessage:
        raise AssertionError("no chat here")

    async def recent_chat(self, room_id: str, limit: int) -> list[ChatMessage]:
        return []


class Box:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def send(self, text: str) -> bool:
        self.sent.append(json.loads(text))
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]


async def home_room(workshop_id: str, participant_id: str) -> RoomInfo:
    return ROOMS[workshop_id]


async def joined() -> tuple[SignalingService, LocalRoomCommands, dict[str, Box]]:
    service = SignalingService(Directory(), NoStore(), SignalingConfig())
    boxes = {name: Box() for name in PEOPLE}
    for name, box in boxes.items():
        await service.join(Hello(type="hello", protocol=[1], token=name), 1, box)
    return service, LocalRoomCommands(service, home_room), boxes


async def test_presence_is_plain_data_of_one_workshop_only() -> None:
    _, commands, _ = await joined()
    live = await commands.presence("w1")
    assert sorted(m.id for m in live.members) == ["ana", "ben"]
    assert all(isinstance(m, LiveMember) and m.room_id == "r1" and m.connected for m in live.members)
    assert list(live.rooms) == ["r1"] and live.rooms["r1"].recording_id is None
    assert live.breakout is None and live.help == []
    assert [m.id for m in (await commands.presence("w2")).members] == ["olga"]


async def test_a_command_naming_another_workshop_changes_nothing() -> None:
    service, commands, boxes = await joined()
    assert await commands.request_mute("w1", "olga", "audio", BY) is False
    assert await commands.request_unmute("w1", "olga", "audio", BY) is False
    assert await commands.set_floor("w1", "olga", True, BY) is False
    assert await commands.hand_floor("w1", "olga", BY) is None
    assert await commands.mute_room("w1", "r2", "audio", BY) == 0
    assert await commands.lower_hands("w1", "r2") == 0
    assert await commands.live_room("w1", "r2") is None
    assert await commands.present_in("w1", "r2") == []
    assert await commands.send_home("w1", "r2", reason="room_deleted") == 0
    await commands.participant_changed("w1", "olga", Profile("Forged", "XX", "", "moderator"))
    await commands.room_changed("w1", ROOMS["w2"].model_copy(update={"name": "Forged"}))
    assert service.members["olga"].profile.display_name == "Olga"
    assert service.live_room("r2") == ROOMS["w2"]
    assert boxes["olga"].types() == ["welcome"]


async def test_mute_and_remove_reach_the_member_of_the_named_workshop() -> None:
    _, commands, boxes = await joined()
    assert await commands.request_mute("w1", "ben", "audio", BY) is True
    assert "mute_requested" in boxes["ben"].types()
    assert await commands.mute_room("w1", "r1", "video", BY) == 2
    assert await commands.remove_participant("w1", "ben", close_code=4403, reason="removed", by=None) is True
    assert boxes["ben"].closed == (4403, "removed")
    assert [m.id for m in (await commands.presence("w1")).members] == ["ana"]


async def test_send_home_moves_everyone_of_a_deleted_room_to_their_home_room() -> None:
    service, commands, boxes = await joined()
    for member in list(service.members_of("w1")):
        service.move(member, BREAKOUT, reason="breakouts")
    assert await commands.live_room("w1", "b1") == BREAKOUT
    assert await commands.send_home("w1", "b1", reason="room_deleted") == 2
    assert {m.room_id for m in (await commands.presence("w1")).members} == {"r1"}
    moved = [m for m in boxes["ana"].sent if m["type"] == "moved"]
    assert [(m["room"]["id"], m["reason"]) for m in moved] == [("b1", "breakouts"), ("r1", "room_deleted")]


def test_http_handlers_reach_live_rooms_only_through_the_command_port() -> None:
    api = Path(__file__).resolve().parents[2] / "server" / "api"
    offenders = [
        f"{path.name}:{n}"
        for path in sorted(api.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"keys\.SIGNALING\b", line)
    ]
    assert offenders == [], "use request.app[keys.COMMANDS] (signaling/commands.py): " + ", ".join(offenders)


def test_coordinators_plug_into_the_hub_through_its_ports_not_its_attributes() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for package in ("signaling", "recordings", "server")
        for path in sorted((root / package).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\b(service|signaling|sfu)\.(breakouts|recordings|recording|[a-z_]+_port)\s*=", line)
    ]
    assert offenders == [], "plug coordinators with HubPorts / SfuBridge.plug_recording: " + ", ".join(offenders)


def test_a_port_is_plugged_once() -> None:
    ports = HubPorts()

    class Breakouts:
        async def choose_room(self, member: Any, room_id: str) -> None:
            pass

    ports.plug_breakouts(Breakouts())
    with pytest.raises(RuntimeError, match="plugged already"):
        ports.plug_breakouts(Breakouts())
    assert ports.recordings is None
