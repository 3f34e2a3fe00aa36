"""Bulk embedding of a user's stored images on Ray Data (for collections too large for one replica).

``EmbedBatch`` is a Ray-free callable class: Ray Data runs it in an actor pool with
``map_batches``; each actor loads the model once. The driver writes the vectors back into the
catalog exactly like the ``/get_all_*_embeddings`` task does, so the search deployment's
indexes pick them up (the owner's catalog version is bumped).

    python -m pipelines.search_embeddings --owner user:ann --kind resnet --batch-size 32 --actors 2
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from percept.config import AppArgs
from percept.imaging import shrink_to
from percept.registry import SEARCH
from percept.search.catalog import ImageCatalog
from percept.search.embedders import load_clip_embedder, load_image_embedder, model_name
from percept.search.engine import EMBED_SIDE
from percept.search.images import decode_image
from percept.storage import BlobStore, open_state_store

logger = logging.getLogger(__name__)


class EmbedBatch:
    """``{"id", "img_path"}`` batches → ``{"id", "embedding"}`` (one model load per actor)."""

    def __init__(self, models_path: str, blob_url: str, kind: str, fallback: str = "efficientnet") -> None:
        # the same model the search service would use (EfficientNet-Lite0 standing in for ResNet34)
        self.core = load_image_embedder(models_path, fallback) if kind == "resnet" else load_clip_embedder(models_path)
        self.blobs = BlobStore(blob_url)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = [shrink_to(decode_image(self.blobs.get_bytes(str(key))), EMBED_SIDE) for key in batch["img_path"]]
        return {"id": np.asarray(batch["id"]), "embedding": self.core.embed_images(images)}


def embed_with_ray_data(
    args: AppArgs, owner: str, kind: str, *, batch_size: int = 32, actors: int = 1,
    num_cpus: float = 1.0, num_gpus: float = 0.0,
) -> dict[str, Any]:
    """Embed every image of ``owner`` lacking an embedding of the current ``kind`` model."""
    import ray

    args = args.resolved()
    assert args.state_url and args.blob_url
    catalog = ImageCatalog(open_state_store(args.state_url), BlobStore(args.blob_url))
    fallback = SEARCH.load_settings(args).resnet_fallback
    model = model_name(args.models_path, kind, fallback)
    todo = catalog.missing_embeddings(owner, kind, model)
    if not todo:
        return {"model": model, "embedded": 0}
    dataset = ray.data.from_items([{"id": d["id"], "img_path": d["img_path"]} for d in todo])
    vectors = dataset.map_batches(
        EmbedBatch,
        fn_constructor_args=(str(args.models_path), args.blob_url, kind, fallback),
        batch_size=batch_size,
        concurrency=actors,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        batch_format="numpy",
    )
    done = 0
    for batch in vectors.iter_batches(batch_size=256, batch_format="numpy"):
        for image_id, vector in zip(batch["id"], batch["embedding"], strict=True):
            catalog.save_embedding(owner, str(image_id), kind, model, np.asarray(vector))
            done += 1
    catalog.bump(owner)
    logger.info("embedded %d images of %s with %s", done, owner, model)
    return {"model": model, "column": f"embedding_{kind}", "embedded": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owner", required=True, help="principal id, e.g. user:ann")
    parser.add_argument("--kind", choices=["resnet", "clip"], default="resnet")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--models-path", default="models")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--num-gpus", type=float, default=0.0)
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    args = AppArgs(data_dir=Path(opts.data_dir), models_path=Path(opts.models_path))
    result = embed_with_ray_data(args, opts.owner, opts.kind, batch_size=opts.batch_size,
                                 actors=opts.actors, num_gpus=opts.num_gpus)
    logger.info("%s", result)


if __name__ == "__main__":
    main()
