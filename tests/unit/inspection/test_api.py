"""The inspection API through the SDK over TestClient, with the real worker and no Ray."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from percept.handles import Absent
from percept.inspection.license import issue_license
from percept.sdk import APIError, VisualInspectionSDK
from percept.services import Services

from .conftest import make_sdk, write_images


def wait_done(sdk: VisualInspectionSDK, item_ids: list[str], timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = [sdk.get_item(i) for i in item_ids]
        if all(i["status"] in ("done", "failed") for i in items):
            return items
        time.sleep(0.2)
    raise AssertionError("prediction did not finish")


def wait_model(sdk: VisualInspectionSDK, model_id: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = next(m for m in sdk.get_models() if m["model_id"] == model_id)
        if model["status"] != "creating":
            return model
        time.sleep(0.2)
    raise AssertionError("training did not finish")


def test_token_errors_in_both_languages(http: TestClient, credentials: tuple[str, str]) -> None:
    with pytest.raises(APIError) as err:
        VisualInspectionSDK("nobody", "x", "http://testserver/api", http_client=http)
    assert str(err.value) == "Cannot find client information (401)"
    with pytest.raises(APIError) as err:
        make_sdk(http, (credentials[0], "wrong"))
    assert err.value.status == 401 and err.value.title == "Client id and secret mismatch"
    r = http.post("/auth/token", json={"client_id": "nobody", "client_secret": "x"}, headers={"Accept-Language": "ja"})
    assert r.status_code == 401
    assert r.json() == {"errors": {"detail": None, "source": {"pointer": "/api/auth/token"}, "status": 401,
                                   "title": "クライアント情報が見つかりません"}}


def test_every_error_under_api_has_the_envelope(http: TestClient, credentials: tuple[str, str]) -> None:
    r = http.get("/v1/items")
    assert r.status_code == 401 and r.json()["errors"]["title"] == "No permission to access this resource"
    r = http.get("/v1/nothing-here", headers={"Accept-Language": "ja"})
    assert r.status_code == 404 and r.json()["errors"]["title"] == "見つかりません"
    r = http.put("/auth/token", json={})
    assert r.status_code == 405 and r.json()["errors"]["status"] == 405
    r = http.post("/auth/token", json={"client_id": "x"})
    assert r.status_code == 400
    body = r.json()["errors"]
    assert body["title"] == "Invalid Request" and body["detail"] == ["Field required: body.client_secret"]
    r = http.post("/auth/token", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "errors" in r.json()


def test_license_is_required_signed_and_once(http: TestClient, credentials: tuple[str, str], services: Services,
                                             tmp_path: Path) -> None:
    sdk = make_sdk(http, credentials)
    assert sdk.get_version_number() == "1.0.0.0"
    with pytest.raises(APIError) as err:
        sdk.get_items()
    assert str(err.value) == "Invalid license! (403)"
    forged = tmp_path / "forged.key"
    good = issue_license(services.state, credentials[0])
    head, payload, sig = good.strip().split(".")
    forged.write_text(f"{head}.{payload}.{sig[:-2]}AA")
    with pytest.raises(APIError) as err:
        sdk.activate_license(str(forged))
    assert err.value.status == 403 and err.value.title == "Invalid license!"
    other_id, _ = services.clients.create("other")
    other = tmp_path / "other.key"
    other.write_text(issue_license(services.state, other_id))
    with pytest.raises(APIError) as err:
        sdk.activate_license(str(other))
    assert err.value.detail == "The license was issued to another client"
    lic = tmp_path / "license.key"
    lic.write_text(good)
    assert sdk.activate_license("test_client", str(lic)) == {"status": "ok"}
    with pytest.raises(APIError) as err:
        sdk.activate_license(str(lic))
    assert str(err.value) == "License already exists (403)"
    sdk.set_language("ja")
    with pytest.raises(APIError) as err:
        sdk.activate_license(str(lic))
    assert err.value.title == "無効なライセンスです！" and err.value.detail == "ライセンスは既に存在します"


def test_upload_validation(sdk: VisualInspectionSDK, tmp_path: Path, texture_set: dict[str, Any]) -> None:
    with pytest.raises(APIError) as err:
        sdk.upload([])
    assert str(err.value) == "No images to upload (400)"
    bad = tmp_path / "2019-05-24 at 3.27.11 PM.png"
    bad.write_bytes(b"x")
    with pytest.raises(APIError) as err:
        sdk.upload([str(bad)])
    assert err.value.title == "Invalid Request"
    assert err.value.detail == ["Invalid filename 2019-05-24 at 3.27.11 PM.png"]
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(APIError) as err:
        sdk.upload([str(junk)])
    assert err.value.detail == ["Unreadable image junk.png"]


def test_full_flow_and_tenancy(sdk: VisualInspectionSDK, http: TestClient, services: Services, tmp_path: Path,
                               texture_set: dict[str, Any]) -> None:
    train_files = write_images(tmp_path / "train", "good_", texture_set["train"])
    assert sdk.upload(train_files, True) == {"item_ids": [f"good_{i}" for i in range(8)]}
    defects = texture_set["defects"]
    test_files = write_images(tmp_path / "test", "ok_", texture_set["test_good"])
    test_files += write_images(tmp_path / "test", "ng_", [img for img, _ in defects])
    uploaded = sdk.upload(test_files)["item_ids"]
    items = sdk.get_items()
    assert len(items["training"]) == 8 and len(items["predict"]) == 4
    assert items["summary"]["training"] == {"defect": 0, "good": 8}

    algorithms = {a["algorithm_id"]: a for a in sdk.get_algorithms()}
    assert {"patchcore", "OC", "hacarus-dictionary-learning"} <= set(algorithms)
    oc = {p["name"]: p for p in algorithms["OC"]["parameters"]}
    assert oc["nu_max"]["data_type"] == "float" and oc["patch_size"]["value"] == "[16, 16]"

    with pytest.raises(APIError) as err:
        sdk.serve(uploaded)
    assert str(err.value) == "There is no available model (400)"
    with pytest.raises(APIError) as err:
        sdk.train("OC", "m", None, ["good_0", "someone_elses"])
    assert err.value.status == 403
    with pytest.raises(APIError) as err:
        sdk.train("OC", "m", [{"algorithm_parameter_id": 999, "value": "1"}], ["good_0"])
    assert err.value.status == 400 and "999" in err.value.detail[0]

    model = sdk.train("patchcore", "first", None, [f"good_{i}" for i in range(8)])
    assert model["status"] == "creating" and model["active"] is False
    model = wait_model(sdk, model["model_id"])
    assert model["status"] == "active" and model["active"] is True, model

    ng_item = uploaded[2]
    image_id = sdk.get_item(ng_item)["images"][0]["image_id"]
    assert sdk.set_annotations([{"x_min": 1, "x_max": 20, "y_min": 2, "y_max": 30, "notes": "seen"}], image_id) == {
        "item_ids": [ng_item]}
    served = sdk.serve(uploaded, "")
    assert served == {"item_ids": uploaded, "model_version": model["version"]}
    done = {i["item_id"]: i for i in wait_done(sdk, uploaded)}
    for item_id, (_img, mask) in zip(uploaded[2:], defects, strict=True):
        detail = done[item_id]
        assert detail["computed_assessment"]["good"] is False, detail["computed_assessment"]
        boxes = detail["images"][0]["detected_boxes"]
        ys, xs = mask.nonzero()
        assert any(b["x_min"] <= xs.mean() <= b["x_max"] and b["y_min"] <= ys.mean() <= b["y_max"] for b in boxes)
        assessment = detail["assessments"][0]
        assert assessment["label"] == "NG" and assessment["detected_objects"] >= 1
    annotated = sdk.get_item(ng_item, show_annotations=True)
    assert annotated["images"][0]["annotations"][0]["notes"] == "seen"
    assert "annotations" not in sdk.get_item(ng_item, show_annotations=False)["images"][0]
    r = http.get(f"/v1/image/{image_id}/anomaly_map", headers={"Authorization": f"Bearer {sdk.access_token}"})
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
    assert sdk.get_processes() == {"predicting": [], "training": []}
    assert sdk.get_items()["summary"]["analysed"] == 4

    # another client sees none of it
    other_id, other_secret = services.clients.create("rival")
    lic = tmp_path / "rival.key"
    lic.write_text(issue_license(services.state, other_id))
    rival = make_sdk(http, (other_id, other_secret), "ja")
    rival.activate_license(str(lic))
    assert rival.get_items()["training"] == [] and rival.get_models() == []
    with pytest.raises(APIError) as err:
        rival.get_item(ng_item)
    assert err.value.status == 401 and err.value.title == "このアイテムを表示する権限がありません！"
    with pytest.raises(APIError) as err:
        rival.get_item("never_uploaded")
    assert err.value.status == 404
    with pytest.raises(APIError) as err:
        rival.serve([ng_item])
    assert err.value.status == 404
    with pytest.raises(APIError) as err:
        rival.set_annotations([], image_id)
    assert err.value.status == 404
    with pytest.raises(APIError) as err:
        rival.delete_models([model["model_id"]])
    assert err.value.status == 404 and err.value.title == "" and err.value.detail == "モデルが見つかりません"

    assert sdk.serve(uploaded[:1], model["model_id"])["model_version"] == model["version"]
    assert wait_done(sdk, uploaded[:1])[0]["assessments"][0]["model_id"] == model["model_id"]
    with pytest.raises(APIError) as err:
        sdk.serve(uploaded[:1], 999999)
    assert err.value.status == 400
    assert sdk.delete_models([model["model_id"]]) == {"status": "ok"}
    assert sdk.get_models() == []


def test_server_errors_keep_the_envelope(services: Services, credentials: tuple[str, str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from percept.api.app import create_app
    from percept.inspection import jobs

    with TestClient(create_app(services), base_url="http://testserver/api", raise_server_exceptions=False) as http:
        sdk = make_sdk(http, credentials, "ja")
        lic = tmp_path / "l.key"
        lic.write_text(issue_license(services.state, credentials[0]))
        sdk.activate_license(str(lic))
        sdk.upload(write_images(tmp_path / "x", "g_", [np.zeros((32, 32, 3), np.uint8)]), True)

        def boom(*_: Any) -> Any:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(jobs, "running", boom)
        r = http.get("/v1/workers", headers={"Authorization": f"Bearer {sdk.access_token}", "Accept-Language": "ja"})
        assert r.status_code == 500
        body = r.json()["errors"]
        assert body["title"] == "サーバー内部エラー" and "secret internals" not in str(body)

        services.inspection.handles.inspection_trainer = Absent()
        with pytest.raises(APIError) as err:
            sdk.train("OC", "m", None, ["g_0"])
        assert err.value.status == 503 and err.value.title == "サービスを利用できません"
        assert sdk.get_models() == []


def test_patchcore_is_the_default_and_uses_labelled_defects(sdk: VisualInspectionSDK, tmp_path: Path) -> None:
    """An empty algorithm_id trains PatchCore; items uploaded as defective are not learnt as
    good but place the threshold (the model's metrics say how many); defects come out NG."""
    import numpy as np

    from tests.synthetic import inspection as synthetic

    rng = np.random.default_rng(9)
    goods = synthetic.good_images("coins", 12, rng, size=128)
    labelled = [synthetic.add_defect(goods[10], "blob", rng, 0.03)[0]]
    bad, mask = synthetic.add_defect(goods[11], "stain", rng, 0.04)
    good_ids = sdk.upload(write_images(tmp_path / "g", "good_", goods[:10]), True)["item_ids"]
    defect_ids = sdk.upload(write_images(tmp_path / "d", "known_bad_", labelled), False)["item_ids"]
    assert sdk.get_items()["summary"]["training"] == {"defect": 1, "good": 10}
    assert sdk.get_algorithms()[0]["algorithm_id"] == "patchcore"
    model = wait_model(sdk, sdk.train("", "line-2", None, good_ids + defect_ids)["model_id"], timeout=180)
    assert model["status"] == "active" and model["algorithm_id"] == "patchcore", model
    assert model["metrics"]["images"] == 10 and model["metrics"]["defect_images"] == 1
    test_ids = sdk.upload(write_images(tmp_path / "t", "unit_", [bad]))["item_ids"]
    sdk.serve(test_ids)
    item = wait_done(sdk, test_ids, timeout=120)[0]
    assert item["computed_assessment"]["good"] is False
    ys, xs = mask.nonzero()
    boxes = item["images"][0]["detected_boxes"]
    assert any(b["x_min"] <= xs.mean() <= b["x_max"] and b["y_min"] <= ys.mean() <= b["y_max"] for b in boxes)


def test_upload_refuses_a_file_name_with_a_path(sdk: VisualInspectionSDK) -> None:
    """A part named like a path is a 400 Invalid Request in the envelope, and nothing is stored."""
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(png, format="PNG")
    for name in ("../escape.png", "sub/dir.png", "a\\b.png"):
        with pytest.raises(APIError) as err:
            sdk._call("POST", "/v1/upload", data={"training": "true", "good": "true"},
                      files=[("files[0]", (name, png.getvalue(), "image/png"))])
        assert err.value.status == 400 and err.value.title == "Invalid Request", name
        assert "plain name" in str(err.value.detail), name
    assert sdk.get_items()["summary"]["training"] == {"defect": 0, "good": 0}
