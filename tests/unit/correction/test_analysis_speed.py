"""The speed work of issue 13 round 15 keeps the figures: the neighbour search done once for the
two label passes, the folds run side by side in threads, the thread limits reaching every
library the analysis loads."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from percept.correction import analysis
from percept.correction.job import run_job
from percept.correction.sinks import DirSink
from tests.synthetic.correction import SyntheticDataset

ROOT = Path(__file__).resolve().parents[3]


def _blobs(seed: int = 0, per_class: int = 60, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(classes, 40))
    labels = np.repeat(np.arange(classes), per_class)
    features = centres[labels] + rng.normal(0, 1.5, size=(len(labels), 40))
    flip = rng.choice(len(labels), 12, replace=False)
    labels[flip] = (labels[flip] + 1) % classes
    return features.astype(np.float32), labels


def test_the_label_passes_find_the_neighbours_once(digits: SyntheticDataset, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Both label passes vote with the same nearest neighbours (they do not depend on the labels):
    the job searches them once over all its images (fails on the old code: two searches)."""
    from sklearn.neighbors import NearestNeighbors

    searched: list[int] = []
    original = NearestNeighbors.kneighbors

    def counting(self: Any, X: Any = None, *args: Any, **kwargs: Any) -> Any:
        searched.append(0 if X is None else len(X))
        return original(self, X, *args, **kwargs)

    monkeypatch.setattr(NearestNeighbors, "kneighbors", counting)
    request = digits.request(["diagnose_mislabeled_images"], label_passes=2)
    out = run_job(request, job_id="nn-once", sink=DirSink(tmp_path / "out"))
    images = out["job"]["images"] - out["job"]["failed_images"]
    assert searched.count(images) == 1, searched


def test_threaded_folds_give_the_same_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    """The folds and the neighbour search run in several threads when the process has CPUs for
    them, and the blend is the same to the last bit as one thread's (fails on the old code: one
    thread only)."""
    features, labels = _blobs()
    used: set[int] = set()
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression.fit

    def recording_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        used.add(threading.get_ident())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", recording_fit)
    results = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("PERCEPT_ANALYSIS_THREADS", threads)
        used.clear()
        first, _ = analysis.out_of_sample_probabilities(features, labels, 4)
        both = analysis.relabelled_probabilities(features, labels, 4, first, 0.4)
        results[threads] = (first, both, len(used))
    assert results["1"][2] == 1
    assert results["3"][2] > 1
    assert np.array_equal(results["1"][0], results["3"][0])
    assert np.array_equal(results["1"][1], results["3"][1])


def test_a_fold_failure_is_raised_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    features, labels = _blobs(1)
    from sklearn.linear_model import LogisticRegression

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("fold broke")

    monkeypatch.setattr(LogisticRegression, "fit", broken)
    for threads in ("1", "2"):
        monkeypatch.setenv("PERCEPT_ANALYSIS_THREADS", threads)
        with pytest.raises(RuntimeError, match="fold broke"):
            analysis.out_of_sample_probabilities(features, labels, 4)


PROBE = r"""
import json, sys
from pathlib import Path
from threadpoolctl import threadpool_info
from percept.correction import analysis
from percept.correction.job import run_job
from percept.correction.sinks import DirSink

assert "sklearn" not in sys.modules, "the probe must start without scikit-learn"
seen = []
original = analysis.out_of_sample_probabilities

def probe(*args, **kwargs):
    seen.append([(i["internal_api"], i["filepath"].rsplit("/", 1)[-1], i["num_threads"]) for i in threadpool_info()])
    return original(*args, **kwargs)

analysis.out_of_sample_probabilities = probe
request = json.loads(Path(sys.argv[1]).read_text())
run_job(request, job_id="probe", sink=DirSink(Path(sys.argv[2])))
print(json.dumps(seen[0]))
"""


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs 2 CPUs to tell limited from not")
def test_the_first_job_of_a_process_runs_every_library_on_one_thread(digits: SyntheticDataset,
                                                                      tmp_path: Path) -> None:
    """threadpoolctl limits only the libraries loaded when it is entered; scikit-learn's OpenMP
    and scipy's own OpenBLAS were loaded later, inside the job, so the first job of a process
    that had not imported scikit-learn (a fresh Serve replica) could run them at the machine's
    thread count (fails on the old code, 81fea2b~1: scikit-learn's libgomp at 2 threads; scipy's
    OpenBLAS was already at 1 when the probabilities started)."""
    request = tmp_path / "request.json"
    request.write_text(json.dumps(digits.request(["diagnose_mislabeled_images"], label_passes=1)))
    done = subprocess.run([sys.executable, "-c", PROBE, str(request), str(tmp_path / "out")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=True)
    libraries = json.loads(done.stdout.strip().splitlines()[-1])
    assert any(api == "openmp" for api, _, _ in libraries), libraries
    assert len([1 for api, _, _ in libraries if api == "openblas"]) >= 2, libraries
    assert all(threads == 1 for _, _, threads in libraries), libraries


def test_a_large_batch_is_measured_in_slices_with_the_same_columns(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray Data pixel task takes a whole block (up to 4,096 images); the featurizer measures it
    in slices (per-image CPU 112 µs at 4,096 against 78 at 512), and the columns are those of one
    pass over the whole batch (fails on the old code: quality_measures saw all 20 images at once)."""
    from PIL import Image

    from percept.correction import features

    rng = np.random.default_rng(0)
    paths = []
    for i in range(20):
        path = tmp_path / f"{i}.png"
        Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    paths[5] = str(tmp_path / "missing.png")
    batch = {"path": np.array(paths, dtype=object), "uuid": np.array([f"u{i}" for i in range(20)], dtype=object)}
    featurizer = features.Featurizer("pixels")
    whole = featurizer(batch)  # 20 ≤ 512: one pass
    seen: list[int] = []
    measure = features.quality_measures

    def recording(grays: np.ndarray) -> np.ndarray:
        seen.append(len(grays))
        return measure(grays)

    monkeypatch.setattr(features, "quality_measures", recording)
    monkeypatch.setattr(features, "SLICE_IMAGES", 8, raising=False)
    sliced = featurizer(batch)
    assert max(seen) <= 8 and sum(seen) == 19
    assert list(sliced) == list(whole)
    for name, column in whole.items():
        assert np.array_equal(np.asarray(column), np.asarray(sliced[name])), name


def test_an_embedding_batch_is_not_sliced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The slices are for the pixel features only: an embedding model's batch (the job's batch
    size, chosen for the model) reaches it whole (fails on the old code: sliced as pixels)."""
    from PIL import Image

    from percept.correction import features

    class FakeModel:
        def __init__(self) -> None:
            self.batches: list[int] = []

        def embed(self, images: list[Any]) -> np.ndarray:
            self.batches.append(len(images))
            return np.zeros((len(images), features.FEATURE_DIMS["imagenet"]), np.float32)

    paths = []
    for i in range(20):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((32, 32, 3), 10 * i, np.uint8)).save(path)
        paths.append(str(path))
    featurizer = features.Featurizer("pixels")
    featurizer.kind, featurizer.model = "imagenet", FakeModel()
    monkeypatch.setattr(features, "SLICE_IMAGES", 8, raising=False)
    featurizer({"path": np.array(paths, dtype=object), "uuid": np.array([str(i) for i in range(20)], dtype=object)})
    assert featurizer.model.batches == [20]


def test_a_constant_reference_leaves_the_tone_unchanged() -> None:
    """A class whose typical quantiles are all one value gives no tone curve to fit: the fit
    returns the identity (gain 1, offset 0, gamma 1). The code before this round's speed work
    solved each gamma by lstsq and kept a gain of ~5e-16 at gamma 0.2 (every pixel mapped to
    the reference value); pinned so that the choice stays deliberate."""
    from percept.correction.images import fit_tone_curve

    own = np.linspace(0.1, 0.9, 20)
    assert fit_tone_curve(own, np.full(20, 0.5)) == (1.0, 0.0, 1.0)
    gain, offset, gamma = fit_tone_curve(own, 0.8 * own ** 0.5 + 0.05)  # a real curve still fits
    assert abs(gain - 0.8) < 0.05 and abs(offset - 0.05) < 0.05 and abs(gamma - 0.5) < 0.05


def test_the_kept_good_images_are_a_tuple_rebuilt_when_records_change(digits: SyntheticDataset) -> None:
    """JobState.good is kept between calls: a tuple (no caller can change the kept copy; fails on
    the old code: a list), rebuilt when the records list is replaced or grows."""
    from percept.correction.job_state import ImageRecord, JobState
    from percept.correction.request import JobConfig, parse_request

    parsed = parse_request(digits.request(["diagnose_image_blur"]))
    records = [ImageRecord(item=item, row={} if i % 3 else {"error": "bad"}, current_class=item.cls,
                           features=np.zeros(2, np.float32)) for i, item in enumerate(parsed.items[:6])]
    state = JobState(job_id="t", classes=list(parsed.classes), records=records, config=JobConfig(), sink=None)  # type: ignore[arg-type]
    good = state.good
    assert isinstance(good, tuple) and [r.item.uuid for r in good] == [r.item.uuid for r in records if r.ok]
    assert state.good is good  # kept
    state.records.append(ImageRecord(item=parsed.items[6], row={}, current_class="x", features=np.zeros(2)))
    assert len(state.good) == len(good) + 1
    state.records = state.records[:2]
    assert len(state.good) == 1
