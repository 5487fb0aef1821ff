"""The composer's pure rules: where tiles go, who is large, who speaks, which video is a screen."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recordings.compose import (
    LEVEL_WINDOW_S,
    Rect,
    TrackInput,
    choose_tiles,
    classify_sources,
    fit,
    layout,
    speakers,
)


def test_one_tile_fills_the_frame_and_more_share_it_without_overlapping() -> None:
    assert layout(960, 540, ("a", "camera"), []) == {("a", "camera"): Rect(0, 0, 960, 540)}
    for n in range(2, 9):
        keys = [(f"p{i}", "camera") for i in range(n)]
        rects = layout(960, 540, keys[0], keys[1:])
        assert rects[keys[0]] == Rect(0, 0, 720, 540), "the large tile takes the left three quarters"
        assert len(rects) == n
        for rect in rects.values():
            assert rect.x >= 0 and rect.y >= 0 and rect.x + rect.w <= 960 and rect.y + rect.h <= 540
            assert rect.x % 2 == rect.y % 2 == rect.w % 2 == rect.h % 2 == 0, "even: chroma is subsampled by two"
        boxes = list(rects.values())
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y, (a, b)


def test_a_frame_keeps_its_aspect_centred_in_its_tile() -> None:
    assert fit(640, 480, Rect(0, 0, 720, 540)) == Rect(0, 0, 720, 540)
    wide = fit(1280, 720, Rect(0, 0, 720, 540))
    assert (wide.w, wide.h) == (720, 404) and wide.y == 68
    tall = fit(480, 640, Rect(722, 0, 238, 134))
    assert tall.h == 134 and tall.w == 100 and tall.x == 722 + 68


def test_a_shared_screen_is_large_else_the_speaker_else_the_first_camera() -> None:
    order = {"a": 0, "b": 1, "c": 2}
    present = {("a", "camera"), ("b", "camera"), ("c", "camera")}
    assert choose_tiles(present, "b", order) == (("b", "camera"), [("a", "camera"), ("c", "camera")])
    assert choose_tiles(present, None, order) == (("a", "camera"), [("b", "camera"), ("c", "camera")])
    assert choose_tiles(present, "gone", order)[0] == ("a", "camera")
    with_screen = present | {("c", "screen")}
    assert choose_tiles(with_screen, "b", order) == (
        ("c", "screen"),
        [("a", "camera"), ("b", "camera"), ("c", "camera")],
    )


def test_the_speaker_changes_only_after_someone_else_has_been_loudest_a_while() -> None:
    windows = round(10 / LEVEL_WINDOW_S)
    loud, quiet = 0.05, 1e-7
    a = np.full(windows, quiet)
    b = np.full(windows, quiet)
    a[:50] = loud  # a speaks for 5 s
    b[50:] = loud  # then b
    b[20:23] = loud * 2  # a cough of b's while a speaks: too short to move the large tile
    who = speakers({"a": a, "b": b}, windows)
    assert set(who[:50]) == {"a"}
    switched = who.index("b")
    assert 50 < switched <= 50 + round(1.0 / LEVEL_WINDOW_S)
    assert set(who[switched:]) == {"b"}
    assert speakers({"a": np.full(5, quiet)}, 5) == [None] * 5, "silence is nobody"


def test_a_second_video_while_the_camera_runs_is_a_screen_unless_the_capture_said() -> None:
    def video(track_id: str, pid: str, offset: float, seconds: float, source: str | None = None) -> TrackInput:
        return TrackInput(track_id, pid, pid, "video", Path("/nowhere"), offset, seconds, source)

    tracks = [
        video("cam", "a", 0, 10),
        video("share", "a", 2, 3),
        video("later-cam", "a", 12, 5),
        video("b-cam", "b", 2, 5),
        video("sfu", "b", 3, 1, "camera"),
    ]
    assert classify_sources(tracks) == {
        "cam": "camera",
        "share": "screen",
        "later-cam": "camera",
        "b-cam": "camera",
        "sfu": "camera",
    }
