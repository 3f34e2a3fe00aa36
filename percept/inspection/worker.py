"""The Ray-free worker the trainer and predictor deployments wrap.

It reads images from the blob store, trains or predicts with :mod:`percept.inspection.engine`,
and writes models and anomaly maps back to the blob store. Nothing here knows about Ray:
the feature backbone PatchCore needs is a :class:`~percept.inspection.patchcore.FeatureBackbone`
(the model in process, or a client of a backbone deployment), made on first use.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from percept.errors import BadRequest, NotFound
from percept.inspection import engine
from percept.inspection.imaging import decode_image
from percept.inspection.patchcore import FeatureBackbone
from percept.storage.blobs import BlobStore, owner_prefix

logger = logging.getLogger(__name__)


def model_key(owner: str, model_id: int) -> str:
    return f"{owner_prefix('inspection', owner)}/models/{model_id}.pkl"


class InspectionWorker:
    """Training and prediction over the blob store, with a small per-process model cache."""

    def __init__(
        self, blobs: BlobStore, work_size: int = 256, cache_size: int = 4,
        backbone: Callable[[], FeatureBackbone] | None = None, batch_size: int = 8,
    ) -> None:
        self.blobs = blobs
        self.work_size = work_size
        self.cache_size = cache_size
        self.batch_size = max(1, batch_size)
        self._make_backbone = backbone or engine.default_backbone
        self._backbone: FeatureBackbone | None = None
        self._cache: OrderedDict[str, engine.TrainedModel] = OrderedDict()

    @property
    def backbone(self) -> FeatureBackbone:
        if self._backbone is None:
            self._backbone = self._make_backbone()
        return self._backbone

    def _backbone_for(self, model_or_algorithm: engine.TrainedModel | str) -> FeatureBackbone | None:
        algorithm_id = model_or_algorithm if isinstance(model_or_algorithm, str) else model_or_algorithm.algorithm_id
        algorithm = engine.ALGORITHMS.get(algorithm_id)
        return self.backbone if algorithm is not None and algorithm.needs_backbone else None

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
        defect_keys: list[str] | None = None,
    ) -> dict[str, Any]:
        """Fit a model on the good images under ``image_keys`` (``defect_keys``: images
        labelled defective, used to place the threshold); store it; return its facts."""
        if not image_keys:
            raise BadRequest("No good training images among the item ids")
        images = [self._image(k) for k in image_keys]
        defects = [self._image(k) for k in defect_keys or []]
        model = engine.train(algorithm_id, params, images, work_size=self.work_size, progress=progress,
                             backbone=self._backbone_for(algorithm_id), defects=defects)
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
        backbone = self._backbone_for(model)
        for start in range(0, len(images), self.batch_size):
            part = images[start : start + self.batch_size]  # one backbone call per batch
            predictions = engine.predict_many(model, [self._image(i["blob_key"]) for i in part], backbone)
            for image, prediction in zip(part, predictions, strict=True):
                heatmap_key = f"{key_prefix}/{image['image_id']}.png"
                self.blobs.put_bytes(heatmap_key, prediction.heatmap_png())
                results.append({"image_id": image["image_id"], "heatmap_key": heatmap_key, **prediction.summary()})
        return results

    def predict(self, model_key_: str, key_prefix: str, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.predict_with(self.load_model(model_key_), key_prefix, images)
