"""Label and count aggregation."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from percept.tagger.aggregate import (
    count_content,
    count_objects,
    label_content,
    video_counts,
    video_label_content,
)


def test_label_content_orders_and_cuts() -> None:
    out = label_content([("b", 0.2), ("a", 0.7), ("c", 0.1)], 2)
    assert out == [{"label": "a", "probability": 0.7}, {"label": "b", "probability": 0.2}]


def test_video_labels_mean_and_timestamps() -> None:
    frames = [[("cat", 0.8), ("dog", 0.1)], [("cat", 0.6), ("sofa", 0.3)], [("cup", 0.9), ("cat", 0.01)]]
    out = video_label_content(frames, [0.0, 1.5, 3.0], 3, 0.05)
    assert [o["label"] for o in out] == ["cat", "cup", "sofa"]
    assert out[0]["probability"] == pytest.approx((0.8 + 0.6 + 0.01) / 3)
    assert out[0]["timestamps"] == [0.0, 1.5]
    assert out[1]["timestamps"] == [3.0]
    assert video_label_content([], [], 5, 0.05) == []
    with pytest.raises(ValueError):
        video_label_content(frames, [0.0], 3, 0.05)


def test_counts_shape() -> None:
    found = [{"label": "person"}, {"label": "car"}, {"label": "car"}, {"label": "backpack"}]
    assert count_content(count_objects(found)) == [{"backpack": 1}, {"car": 2}, {"person": 1}]
    assert count_content({}) == []


def test_video_counts_take_the_most_at_once() -> None:
    frames = [[{"label": "car"}] * 3, [{"label": "car"}, {"label": "dog"}], []]
    assert video_counts(frames) == Counter({"car": 3, "dog": 1})


@given(st.lists(st.lists(st.sampled_from(["car", "person", "dog"]), max_size=6), min_size=1, max_size=6))
def test_video_counts_bounds(frames_labels: list[list[str]]) -> None:
    frames = [[{"label": x} for x in labels] for labels in frames_labels]
    total = video_counts(frames)
    for label, n in total.items():
        assert n == max(labels.count(label) for labels in frames_labels)
    assert sum(total.values()) <= sum(len(f) for f in frames_labels)
