"""The inspection flow over real HTTP against the Serve app, driven by the SDK.

Operators' side through the CLI (client + license on the app's own state store), then
upload -> annotate -> train (a task on InspectionTrainer, PatchCore features from the
InspectionBackbone deployment) -> serve (multiplexed InspectionPredictor, batched backbone
calls) -> item detail, in English and Japanese, and tenancy.
"""

from __future__ import annotations

import io
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from percept.cli import main as cli
from percept.sdk import APIError, VisualInspectionSDK
from tests.synthetic import inspection as synthetic

AppUnderTest = Any  # the percept_app fixture's object (url, root, client())

pytestmark = pytest.mark.integration


def operator(app: AppUnderTest, *argv: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli(["--data-dir", str(app.root / "data"), *argv]) == 0
    return out.getvalue()


def new_client(app: AppUnderTest, tmp_path: Path, name: str, language: str = "en") -> VisualInspectionSDK:
    client_id, secret = operator(app, "clients", "create", name).split()
    lic = tmp_path / f"{name}.key"
    operator(app, "license", "issue", client_id, "-o", str(lic))
    sdk = VisualInspectionSDK(client_id, secret, f"{app.url}/api", language)
    assert sdk.activate_license(name, str(lic)) == {"status": "ok"}
    return sdk


def save(folder: Path, prefix: str, images: list[np.ndarray]) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        path = folder / f"{prefix}{i}.png"
        Image.fromarray(img).save(path)
        paths.append(str(path))
    return paths


def poll(fn: Any, done: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if done(value):
            return value
        time.sleep(0.5)
    raise AssertionError(f"not done after {timeout}s: {value}")


def test_inspection_flow_over_http(percept_app: AppUnderTest, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    goods = synthetic.good_crops("brick", 12, 128, rng)
    defects = [synthetic.add_defect(img, kind, rng, 0.04) for img, kind in zip(goods[10:], ("scratch", "stain"), strict=True)]
    sdk = new_client(percept_app, tmp_path, "factory")
    assert sdk.get_version_number() == "1.0.0.0"

    training = sdk.upload(save(tmp_path / "train", "good_", goods[:10]), True)["item_ids"]
    predict = sdk.upload(save(tmp_path / "test", "ng_", [img for img, _ in defects]))["item_ids"]
    assert sdk.get_items()["summary"]["training"] == {"defect": 0, "good": 10}

    ids = [a["algorithm_id"] for a in sdk.get_algorithms()]
    assert ids[0] == "patchcore" and {"OC", "hacarus-dictionary-learning"} <= set(ids)
    # the default algorithm: PatchCore, its features from the InspectionBackbone deployment
    model = sdk.train("", "line-1", None, training)
    assert model["algorithm_id"] == "patchcore"
    assert model["status"] == "creating"
    model = poll(lambda: next(m for m in sdk.get_models() if m["model_id"] == model["model_id"]),
                 lambda m: m["status"] != "creating")
    assert model["status"] == "active" and model["active"], model

    image_id = sdk.get_item(predict[0])["images"][0]["image_id"]
    sdk.set_annotations([{"x_min": 0, "x_max": 10, "y_min": 0, "y_max": 10, "notes": None}], image_id)
    assert sdk.serve(predict)["model_version"] == model["version"]
    items = poll(lambda: [sdk.get_item(i) for i in predict], lambda xs: all(x["status"] == "done" for x in xs))
    for item, (_, mask) in zip(items, defects, strict=True):
        assert item["computed_assessment"]["good"] is False
        ys, xs = mask.nonzero()
        boxes = item["images"][0]["detected_boxes"]
        assert any(b["x_min"] <= xs.mean() <= b["x_max"] and b["y_min"] <= ys.mean() <= b["y_max"] for b in boxes)
        assert item["assessments"][0]["label"] == "NG"
    assert items[0]["images"][0]["annotations"][0]["x_max"] == 10
    assert sdk.get_processes() == {"predicting": [], "training": []}

    # Japanese errors, tenancy, the envelope on unknown routes
    rival = new_client(percept_app, tmp_path, "rival", "ja")
    with pytest.raises(APIError) as err:
        rival.get_item(predict[0])
    assert err.value.status == 401 and err.value.title == "このアイテムを表示する権限がありません！"
    with pytest.raises(APIError) as err:
        rival.serve(predict)
    assert str(err.value) == "アイテムが見つかりません (404)"
    r = httpx.get(f"{percept_app.url}/api/v1/unknown", headers={"Accept-Language": "ja"})
    assert r.status_code == 404 and r.json()["errors"]["source"]["pointer"] == "/api/v1/unknown"
    assert sdk.delete_models([model["model_id"]]) == {"status": "ok"}
    with pytest.raises(APIError) as err:
        sdk.serve(predict)
    assert str(err.value) == "There is no available model (400)"
