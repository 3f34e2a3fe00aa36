"""Whole jobs in-process (no Ray): every task finds what was injected, correct tasks fix it."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from percept.correction.images import decode, measure, native_array
from percept.correction.interface import get_image_metadata, run_correction, start_ic_processing_job
from percept.correction.job import local_executor, run_job
from percept.correction.request import TASK_KINDS
from percept.correction.sinks import DirSink
from percept.errors import BadRequest, NotFound
from tests.synthetic.correction import SyntheticDataset

ALL_TASKS = [f"{a}_{k}" for k in TASK_KINDS for a in ("diagnose", "correct")]


@pytest.fixture(scope="module")
def full_run(digits: SyntheticDataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out_dir = tmp_path_factory.mktemp("out")
    events: list[tuple[float, str]] = []
    result = run_job(digits.request(ALL_TASKS), job_id="job1", sink=DirSink(out_dir),
                     emit=lambda p, m: events.append((p, m)))
    return {"result": result, "events": events, "out": out_dir}


def _task(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in result["tasks"] if t["name"] == name)


def _entries(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["uuid"]: e for files in result["dataset"]["class_files"].values() for e in files.values()}


def test_output_shape_per_image(full_run: dict[str, Any], digits: SyntheticDataset) -> None:
    result = full_run["result"]
    entries = _entries(result)
    assert set(entries) == set(digits.given_class)
    n_classes = len(digits.dataset["classes"])
    for uid, e in entries.items():
        assert e["original_class"] == digits.given_class[uid]
        assert e["width"] == 32 and e["height"] == 32 and e["channels"] == 3
        assert len(e["mean"]) == 3 and len(e["std_dev"]) == 3
        assert len(e["confidence_vectors"]) == 1 and len(e["confidence_vectors"][0]) == n_classes
        assert sum(e["confidence_vectors"][0]) == pytest.approx(1.0, abs=1e-3)
        assert len(e["projections"]["pca"]) == 2
    assert len(result["dataset"]["mean"]) == 3 and 0 < result["dataset"]["mean"][0] < 1
    progress = [p for p, _ in full_run["events"]]
    assert progress == sorted(progress) and progress[-1] > 90


def test_mislabeled_found_and_relabelled(full_run: dict[str, Any], digits: SyntheticDataset) -> None:
    result = full_run["result"]
    found = set(_task(result, "diagnose_mislabeled_images")["outliers"])
    hits = found & digits.flipped
    assert len(hits) >= 0.55 * len(digits.flipped), (len(hits), len(digits.flipped))
    assert len(hits) >= 0.6 * len(found)  # small classes: some real digits are ambiguous
    fix = _task(result, "correct_mislabeled_images")
    assert set(fix["corrected"]) | set(fix["removed"]) == found
    entries = _entries(result)
    merged_from, merged_to = digits.merged or ("", "")
    truth = {u: (merged_to if c == merged_from else c) for u, c in digits.true_class.items()}
    relabelled_right = [u for u in fix["corrected"] if u in digits.flipped
                        and entries[u]["current_class"].split("_split_")[0] == truth[u]]
    assert len(relabelled_right) >= 0.7 * len([u for u in fix["corrected"] if u in digits.flipped])


def test_merged_class_is_split(full_run: dict[str, Any], digits: SyntheticDataset) -> None:
    result = full_run["result"]
    merged_from, merged_to = digits.merged or ("", "")
    diag = _task(result, "diagnose_class_splitting")
    assert diag["outliers"] == [merged_to]
    assert diag["subclasses"][merged_to] >= 2
    fix = _task(result, "correct_class_splitting")
    names = fix["new_classes"][merged_to]
    assert all(n in result["dataset"]["classes"] for n in names)
    entries = _entries(result)
    # The two true digits filed under one class land mostly in different sub-classes.
    groups: dict[str, list[str]] = {}
    for uid, e in entries.items():
        if e["original_class"] == merged_to and uid not in digits.flipped:
            groups.setdefault(digits.true_class[uid], []).append(e["current_class"])
    majority = {d: max(set(v), key=v.count) for d, v in groups.items()}
    assert majority[merged_from] != majority[merged_to]


def test_blur_and_lighting_found_and_fixed(full_run: dict[str, Any], digits: SyntheticDataset) -> None:
    result = full_run["result"]
    blur = set(_task(result, "diagnose_image_blur")["outliers"])
    assert digits.blurred <= blur and len(blur) <= len(digits.blurred) + 2
    light = _task(result, "diagnose_lighting_conditions")
    assert digits.dark <= set(light["dark"]) and digits.bright <= set(light["bright"])
    assert len(light["outliers"]) <= len(digits.dark | digits.bright) + 3
    entries = _entries(result)
    fixed = _task(result, "correct_lighting_conditions")["corrected"]
    assert set(fixed) >= digits.dark | digits.bright
    typical = np.median([e["brightness"] for e in entries.values()])
    for uid in digits.dark | digits.bright:
        path = entries[uid]["corrected_path"]
        assert Path(path).is_file() and path != digits.paths[uid]
        before = entries[uid]["brightness"]
        after = measure(decode(path), with_pixels=False).brightness
        assert abs(after - typical) < abs(before - typical)
    for uid in _task(result, "correct_image_blur")["corrected"]:
        if uid in digits.blurred:
            before = measure(decode(digits.paths[uid]), False).sharpness
            assert measure(decode(entries[uid]["corrected_path"]), False).sharpness > before
    report = Path(result["job"]["report"]).read_text()
    assert "<img" in report and "diagnose_mislabeled_images" in report


def test_originals_untouched(full_run: dict[str, Any], digits: SyntheticDataset) -> None:
    outputs = {str(p) for p in Path(full_run["out"]).rglob("*") if p.is_file()}
    assert not outputs & set(digits.paths.values())
    uid = next(iter(digits.dark))
    assert native_array(decode(digits.paths[uid])).mean() < 0.15  # still dark


def test_bad_input_is_reported_not_fatal(digits: SyntheticDataset, tmp_path: Path) -> None:
    src = sorted(digits.paths.items())[:24]
    classes: dict[str, dict[str, Any]] = {"a": {}, "b": {}, "lonely": {}}
    for n, (uid, path) in enumerate(src[:22]):
        target = tmp_path / f"{uid}.png"
        shutil.copy(path, target)
        classes["a" if n % 2 else "b"][str(target)] = {"uuid": uid}
    (tmp_path / "junk.png").write_bytes(b"not a png")
    classes["a"][str(tmp_path / "junk.png")] = {"uuid": "junk"}
    classes["b"][str(tmp_path / "missing.png")] = {"uuid": "missing"}
    shutil.copy(src[22][1], tmp_path / "one.png")
    classes["lonely"][str(tmp_path / "one.png")] = {"uuid": "one"}
    request = {"dataset": {"classes": ["a", "b", "lonely"], "class_files": classes},
               "tasks": [{"name": "ic::diagnose::mislabeled_images"}, {"name": "correct_class_splitting"},
                         {"name": "diagnose_everything"}]}
    result = run_job(request, job_id="bad", sink=DirSink(tmp_path / "out"), executor=local_executor)
    errors = {e["uuid"]: e["error"] for e in result["job"]["errors"]}
    assert "undecodable" in errors["junk"] and "not found" in errors["missing"]
    entries = _entries(result)
    assert entries["junk"]["confidence_vectors"] == [] and "error" in entries["junk"]
    assert any("lonely" in w for w in result["job"]["warnings"])
    assert "error" in result["tasks"][2] and "unknown task" in result["tasks"][2]["error"]
    assert "lonely" in result["tasks"][1]["skipped"]


def test_python_api_with_socket_events(digits: SyntheticDataset, tmp_path: Path) -> None:
    small = {c: dict(list(files.items())[:12]) for c, files in digits.dataset["class_files"].items()}
    request = {"config_params": {"output_dir": str(tmp_path / "out")},
               "dataset": {"uuid": "d", "classes": digits.dataset["classes"], "class_files": small},
               "tasks": [{"name": "diagnose_image_blur"}]}
    sock_path = str(tmp_path / "events.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    received: list[bytes] = []

    def listen() -> None:
        conn, _ = server.accept()
        while chunk := conn.recv(65536):
            received.append(chunk)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    result = run_correction("user-1", json.dumps(request), sock_path, executor=local_executor)
    thread.join(timeout=10)
    server.close()
    events = [json.loads(line) for line in b"".join(received).decode().splitlines()]
    assert events[0]["event"] == "progress" and events[-1] == {**events[-1], "event": "status", "status": "completed"}
    assert all(e["user"] == "user-1" and e["job_id"] == result["job"]["id"] for e in events)
    assert Path(result["job"]["report"]).parent == tmp_path / "out"
    path = next(iter(small[digits.dataset["classes"][0]]))
    meta = json.loads(get_image_metadata("user-1", json.dumps({"path": path}), ""))
    assert meta["channels"] == 3 and meta["width"] == 32
    with pytest.raises(NotFound):
        get_image_metadata("u", json.dumps({"path": str(tmp_path / "nope.png")}), "")
    with pytest.raises(BadRequest):
        start_ic_processing_job("u", "{not json", "")
    with pytest.raises(BadRequest):
        get_image_metadata("u", "{}", str(tmp_path / "nobody-listens.sock"))
