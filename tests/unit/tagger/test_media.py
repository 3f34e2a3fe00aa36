"""Decoding documents and sampling video frames."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from percept.tagger.media import (
    FILE_TYPE_NOT_VALID,
    NOT_SUITABLE,
    DocumentRejected,
    choose_frames,
    decode_base64,
    decode_image,
    decode_video,
    media_kind,
    normalise_type,
)
from tests.synthetic.tagger import encode_image, make_video

from .conftest import solid


@pytest.mark.parametrize(
    ("file_type", "file_name", "expected"),
    [("JPEG", None, "jpeg"), (".png", None, "png"), ("image/webp", None, "webp"),
     (None, "clip.MP4", "mp4"), ("", "x.tar.gz", "gz"), (None, None, "")],
)
def test_normalise_type(file_type: str | None, file_name: str | None, expected: str) -> None:
    assert normalise_type(file_type, file_name) == expected


def test_media_kind() -> None:
    assert [media_kind(t) for t in ("jpg", "tiff", "gif", "mov", "webm")] == [
        "image", "image", "image", "video", "video"]
    with pytest.raises(DocumentRejected) as err:
        media_kind("pdf")
    assert err.value.reason == FILE_TYPE_NOT_VALID


def test_decode_base64_rejections() -> None:
    for bad in (None, "", "   ", 12, "not base64 !!"):
        with pytest.raises(DocumentRejected) as err:
            decode_base64(bad, 1000)
        assert err.value.reason == NOT_SUITABLE
    with pytest.raises(DocumentRejected) as err:
        decode_base64(base64.b64encode(b"x" * 5000).decode(), 1000)
    assert err.value.reason.startswith("File too large")
    assert decode_base64("data:image/png;base64," + base64.b64encode(b"abc").decode(), 1000) == b"abc"
    assert decode_base64(base64.encodebytes(b"abc" * 40).decode(), 1000) == b"abc" * 40


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"])
def test_decode_image_formats(fmt: str) -> None:
    rgb = decode_image(encode_image(solid((200, 30, 30), (40, 50)), fmt))
    assert rgb.shape == (40, 50, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].mean() > 150


def test_decode_image_rejects_garbage_and_shrinks() -> None:
    with pytest.raises(DocumentRejected):
        decode_image(b"\x89PNG not really")
    big = decode_image(encode_image(solid((0, 0, 0), (600, 900))))
    assert min(big.shape[:2]) == 256
    assert decode_image(encode_image(solid((0, 0, 0), (10, 20)))).shape == (10, 20, 3)  # small: kept


def test_choose_frames_keeps_first_and_cuts() -> None:
    diffs = [0.0, 0.01, 0.02, 0.9, 0.01, 0.01, 0.5, 0.0, 0.0, 0.0]
    chosen = choose_frames(diffs, 4, 0.25)
    assert chosen[0] == 0 and {3, 6} <= set(chosen) and len(chosen) == 4
    assert choose_frames(diffs, 2, 0.25) == [0, 3]  # the strongest cut wins the budget
    assert choose_frames([], 5, 0.25) == []
    assert choose_frames([0.0] * 3, 10, 0.25) == [0, 1, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=80), st.integers(1, 20))
def test_choose_frames_properties(diffs: list[float], budget: int) -> None:
    chosen = choose_frames(diffs, budget, 0.25)
    assert chosen == sorted(set(chosen))
    assert chosen[0] == 0
    assert len(chosen) == min(budget, len(diffs))
    assert all(0 <= i < len(diffs) for i in chosen)


def test_decode_video_finds_scene_changes() -> None:
    data = make_video([((255, 0, 0), 2.0), ((0, 0, 255), 2.0), ((0, 255, 0), 1.0)], fps=10)
    media = decode_video(data, max_frames=3, probe_fps=5)
    assert media.kind == "video" and 4.5 <= media.duration <= 5.5
    times = [f.timestamp for f in media.frames]
    colours = [int(np.argmax(f.image.reshape(-1, 3).mean(axis=0))) for f in media.frames]
    assert times[0] == 0.0 and colours == [0, 2, 1]  # red at 0, then the cuts to blue and green
    assert 1.9 <= times[1] <= 2.3 and 3.9 <= times[2] <= 4.3


@pytest.mark.parametrize(("container", "codec"), [("avi", "mpeg4"), ("webm", "libvpx"), ("mov", "mpeg4")])
def test_decode_video_containers(container: str, codec: str) -> None:
    data = make_video([((255, 0, 0), 1.0), ((0, 0, 255), 1.0)], container=container, codec=codec)
    media = decode_video(data, max_frames=5)
    assert len(media.frames) == 5
    assert any(f.image[..., 2].mean() > 200 and f.timestamp >= 0.9 for f in media.frames)


def test_decode_video_rejects_garbage() -> None:
    with pytest.raises(DocumentRejected) as err:
        decode_video(b"\x00\x00\x00\x18ftypmp42 garbage" * 10)
    assert err.value.reason == NOT_SUITABLE


def test_long_videos_are_probed_on_key_frames() -> None:
    data = make_video([((255, 0, 0), 3.0), ((0, 0, 255), 3.0)], fps=10)
    every = decode_video(data, max_frames=60, probe_fps=100, keyframes_after_s=1000)
    keys = decode_video(data, max_frames=60, probe_fps=100, keyframes_after_s=1.0)
    assert len(every.frames) == 60
    assert 2 <= len(keys.frames) < 20  # mpeg4 puts a key frame every dozen frames
    assert keys.frames[-1].image[..., 2].mean() > 200  # still sees the blue half
