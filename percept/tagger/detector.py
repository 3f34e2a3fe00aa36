"""The object detector core: a transformers COCO detector (DETR, YOLOS, ...) from the
models directory, loaded with ``AutoModelForObjectDetection``. No offline weights exist;
without them the deployment reports detection unavailable and labels keep working.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from percept.models.weights import find_hf_model, pick_device
from percept.tagger.aggregate import Detection
from percept.tagger.settings import TaggerSettings

logger = logging.getLogger(__name__)


class ObjectDetector:
    """Boxes, labels and scores per image above a score threshold."""

    def __init__(self, reference: str, device: str = "auto") -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModelForObjectDetection

        self._torch = torch
        self.device = pick_device(device)
        # The PIL processors need no torchvision (not installed here).
        self.processor = AutoImageProcessor.from_pretrained(reference, use_fast=False)
        self.model = AutoModelForObjectDetection.from_pretrained(reference).eval().to(self.device)
        self.labels: dict[int, str] = {int(k): str(v) for k, v in self.model.config.id2label.items()}
        self.name = Path(reference).name
        self._lock = threading.Lock()
        logger.info("loaded detector %s on %s", reference, self.device)

    def detect(self, images: list[np.ndarray], threshold: float) -> list[list[Detection]]:
        """Per image, ``[{"label", "score", "box": [x0, y0, x1, y1]}]`` in pixels."""
        if not images:
            return []
        torch = self._torch
        sizes = [tuple(image.shape[:2]) for image in images]
        with self._lock, torch.inference_mode():
            inputs = self.processor(images=list(images), return_tensors="pt").to(self.device)
            outputs = self.model(**inputs)
            results = self.processor.post_process_object_detection(
                outputs, threshold=threshold, target_sizes=sizes
            )
        out: list[list[Detection]] = []
        for result in results:
            found = []
            for score, label, box in zip(
                result["scores"].tolist(), result["labels"].tolist(), result["boxes"].tolist(), strict=True
            ):
                found.append({
                    "label": self.labels.get(int(label), str(label)),
                    "score": round(float(score), 4),
                    "box": [round(float(v), 1) for v in box],
                })
            out.append(found)
        return out


def load_detector(settings: TaggerSettings, models_path: str | Path, device: str = "auto") -> Any:
    """The configured detector; :class:`WeightsMissing` when it is not in the models dir."""
    reference = find_hf_model(models_path, settings.detector, settings.detector_repo, "tagger object detector")
    return ObjectDetector(reference, device)
