"""The Ray-free worker the trainer and predictor deployments wrap.

It reads images from the blob store, trains or predicts with :mod:`percept.inspection.engine`,
and writes models and anomaly maps back to the blob store. Nothing here knows about Ray.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from percept.errors import BadRequest, NotFound
from percept.inspection import engine
from percept.inspection.imaging import decode_image
from percept.storage.blobs import BlobStore, owner_prefix

logger = logging.getLogger(__name__)


def model_key(owner: str, model_id: int) -> str:
    return f"{owner_prefix('inspection', owner)}/models/{model_id}.pkl"


class InspectionWorker:
    """Training and prediction over the blob store, with a small per-process model cache."""

    def __init__(self, blobs: BlobStore, work_size: int = 256, cache_size: int = 4) -> None:
        self.blobs = blobs
        self.work_size = work_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, engine.TrainedModel] = OrderedDict()

    def _image(self, key: str) -> Any:
        try:
            return decode_image(self.blobs.get_bytes(key))
        except KeyError:
            raise NotFound(f"image {key} is missing from the blob store") from None

    def train(
        self,
        owner: str,
        model_id: int,
        algorithm_id: str,
        params: dict[str, Any],
        image_keys: list[str],
        progress: Callable[[float, str], None] | None = None,
    ) -> dict[str, Any]:
        """Fit a model on the good images under ``image_keys``; store it; return its facts."""
        if not image_keys:
            raise BadRequest("No good training images among the item ids")
        images = [self._image(k) for k in image_keys]
        model = engine.train(algorithm_id, params, images, work_size=self.work_size, progress=progress)
        key = model_key(owner, model_id)
        self.blobs.put_bytes(key, model.to_bytes())
        logger.info("trained %s model %s on %d images", algorithm_id, model_id, len(images))
        return {
            "model_key": key,
            "median": model.median,
            "threshold": model.threshold,
            **model.info,
        }

    def load_model(self, key: str) -> engine.TrainedModel:
        """A stored model (cached; evicted least recently used first)."""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            model = engine.TrainedModel.from_bytes(self.blobs.get_bytes(key))
        except KeyError:
            raise NotFound("There is no available model") from None
        self._cache[key] = model
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return model

    def predict_with(
        self, model: engine.TrainedModel, key_prefix: str, images: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Predict ``[{"image_id", "blob_key"}]``; anomaly maps go to ``<key_prefix>/<image_id>.png``."""
        results = []
        for image in images:
            prediction = engine.predict(model, self._image(image["blob_key"]))
            heatmap_key = f"{key_prefix}/{image['image_id']}.png"
            self.blobs.put_bytes(heatmap_key, prediction.heatmap_png())
            results.append({"image_id": image["image_id"], "heatmap_key": heatmap_key, **prediction.summary()})
        return results

    def predict(self, model_key_: str, key_prefix: str, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.predict_with(self.load_model(model_key_), key_prefix, images)
