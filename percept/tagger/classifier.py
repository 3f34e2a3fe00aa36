"""Classifier cores: the offline EfficientNet-Lite0, or a transformers classifier.

Both answer ``predict(images) -> (n, classes)`` probabilities and hold ``labels``; the
deployment batches requests and takes each caller's top-k with :func:`top_k`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from percept.models.weights import find_hf_model, pick_device
from percept.tagger.settings import TaggerSettings

logger = logging.getLogger(__name__)
DEFAULT_CLASSIFIER = "efficientnet-lite0"
WARM_BATCH_SIZES = (1, 2, 3, 4)  # run once each when frozen: the CPU's max_batch_size is 4 (serve_config.yaml)


class Classifier(Protocol):
    """What the classifier deployment needs of a core."""

    name: str
    labels: list[str]
    device: str

    def predict(self, images: list[np.ndarray]) -> np.ndarray: ...


def top_k(probs: np.ndarray, labels: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable ``(label, probability)`` pairs of one probability vector."""
    k = max(0, min(k, probs.shape[-1]))
    order = np.argsort(-probs, kind="stable")[:k]
    return [(labels[i], float(probs[i])) for i in order]


class ImageNetClassifier:
    """The offline default: :class:`percept.models.imagenet.ImageNetModel`.

    ``graph="frozen"`` (the default) runs the forward pass on the CPU as a frozen TorchScript
    graph (batch norms folded into the convolutions; one C++ call that releases the GIL, where
    eager PyTorch takes the GIL back for every operator); on other devices, or when tracing
    fails, the eager model. Same weights, same probabilities (within 1e-5). Beside a busy
    event loop an eager pass waits for the GIL between its operators; the frozen one does
    not, so several passes can run at once. The measured figures are in docs/performance.md.
    """

    def __init__(self, models_path: str | Path | None, device: str = "auto", parallel: int = 1,
                 graph: str = "frozen") -> None:
        from percept.models.imagenet import ImageNetModel

        self.model = ImageNetModel(models_path, device=device, parallel=parallel)
        self.name = self.model.name
        self.labels = self.model.labels
        self.device = self.model.device
        self._frozen: Any = None
        if graph == "frozen" and str(self.device) == "cpu":
            self._frozen = freeze_classifier(self.model.model)
        self.graph = "frozen" if self._frozen is not None else "eager"

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        """Class probabilities, shape (n, 1000)."""
        if not images:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if self._frozen is None:
            return np.stack(self.model.predict_batch(images))
        import torch

        with self.model._lock, torch.no_grad():  # the model's cap on passes at once still holds
            return self._frozen(self.model.preprocess(images)).numpy()  # type: ignore[no-any-return]


def freeze_classifier(net: Any) -> Any:
    """EfficientNet-Lite0's image -> probabilities path (features, pooling, fc, softmax) as a
    frozen TorchScript module, or None (logged) when this torch cannot trace or freeze it."""
    import warnings

    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features = self.model.extract_features(x)
            pooled = self.model._avg_pooling(features).flatten(1)
            return torch.softmax(self.model._fc(pooled), dim=1)

    try:
        with warnings.catch_warnings(), torch.no_grad():
            # torch.jit is deprecated in favour of torch.compile/export (which need a compiler at
            # run time or the onnx package): still shipped and working; eager is the fallback.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = Probabilities(net).eval()
            frozen = torch.jit.freeze(torch.jit.trace(module, torch.zeros(1, 3, 224, 224)))
            for size in WARM_BATCH_SIZES:  # the batch size is free; the first runs of a shape optimise
                frozen(torch.zeros(size, 3, 224, 224))
        return frozen
    except Exception:  # noqa: BLE001 - any failure leaves the eager model, which always works
        logger.warning("EfficientNet-Lite0: frozen graph unavailable, running the eager model", exc_info=True)
        return None


class HFImageClassifier:
    """Any ``AutoModelForImageClassification`` folder (e.g. microsoft/resnet-50)."""

    def __init__(self, reference: str, device: str = "auto") -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self._torch = torch
        self.device = pick_device(device)
        self.processor = AutoImageProcessor.from_pretrained(reference)
        self.model = AutoModelForImageClassification.from_pretrained(reference).eval().to(self.device)
        id2label = self.model.config.id2label
        self.labels = [str(id2label.get(i, i)).split(",")[0] for i in range(len(id2label))]
        self.name = Path(reference).name
        self._lock = threading.Lock()
        logger.info("loaded classifier %s on %s", reference, self.device)

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        """Softmax probabilities, shape (n, classes)."""
        if not images:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        torch = self._torch
        with self._lock, torch.inference_mode():
            inputs = self.processor(images=list(images), return_tensors="pt").to(self.device)
            logits = self.model(**inputs).logits
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()


def load_classifier(settings: TaggerSettings, models_path: str | Path, device: str = "auto",
                    parallel: int = 1) -> Any:
    """The configured classifier; :class:`WeightsMissing` when its folder is not there.

    ``parallel``: forward passes the EfficientNet core may run at once (the transformers
    classifier runs one at a time).
    """
    if settings.classifier == DEFAULT_CLASSIFIER:
        return ImageNetClassifier(models_path, device, parallel=parallel, graph=settings.classifier_graph)
    reference = find_hf_model(models_path, settings.classifier, settings.classifier_repo, "tagger classifier")
    return HFImageClassifier(reference, device)
