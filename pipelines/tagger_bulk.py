"""Bulk tagging on Ray Data: label every image of a directory with the tagger's classifier.

The same Ray-free core as the ``tagger_classifier`` deployment, run as a callable class in
``map_batches`` (one model load per actor, ``batch_size`` images per forward pass), for
pipelines that tag a whole dataset rather than calling ``/process`` document by document.

    python -m pipelines.tagger_bulk IMAGES_DIR [--models models] [--top-k 5] > labels.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from percept.imaging import shrink_to
from percept.tagger.classifier import load_classifier, top_k
from percept.tagger.media import FRAME_SHORT_SIDE, IMAGE_TYPES
from percept.tagger.settings import TaggerSettings

logger = logging.getLogger(__name__)


class TagBatch:
    """``map_batches`` callable: ``{"image", "path"}`` → ``{"path", "labels"}`` (JSON text)."""

    def __init__(self, models_path: str, settings: dict[str, Any], k: int) -> None:
        self.core = load_classifier(TaggerSettings.from_section(settings), models_path)
        self.k = k

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = [shrink_to(np.asarray(image, dtype=np.uint8), FRAME_SHORT_SIDE) for image in batch["image"]]
        probs = self.core.predict(images)
        labels = [
            json.dumps([{"label": label, "probability": p} for label, p in top_k(row, self.core.labels, self.k)])
            for row in probs
        ]
        return {"path": np.asarray(batch["path"]), "labels": np.asarray(labels)}


def tag_directory(
    directory: str | Path,
    models_path: str | Path,
    *,
    k: int = 5,
    batch_size: int = 16,
    concurrency: int = 1,
    num_cpus: float = 1.0,
    settings: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """``[{"path", "labels": [{"label", "probability"}]}]`` for every image under ``directory``."""
    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    paths = sorted(str(p) for p in Path(directory).rglob("*")
                   if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_TYPES)
    if not paths:
        return []
    dataset = ray.data.read_images(paths, mode="RGB", include_paths=True)
    tagged = dataset.map_batches(
        TagBatch,
        fn_constructor_args=(str(models_path), settings or {}, k),
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=concurrency,
        num_cpus=num_cpus,
    )
    rows = [{"path": str(row["path"]), "labels": json.loads(str(row["labels"]))}
            for row in tagged.iter_rows()]
    return sorted(rows, key=lambda row: row["path"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--models", default="models")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=1)
    opts = parser.parse_args()
    for row in tag_directory(opts.directory, opts.models, k=opts.top_k, batch_size=opts.batch_size,
                             concurrency=opts.concurrency):
        sys.stdout.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
