"""Fixtures: an app with the inspection routes over real cores (no Ray), a client, a license."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from percept.api.app import create_app
from percept.handles import InspectionHandles
from percept.inspection.license import issue_license
from percept.inspection.worker import InspectionWorker
from percept.sdk import VisualInspectionSDK
from percept.services import Services
from percept.testing import LocalHandle, make_services
from tests.synthetic import inspection as synthetic


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The backbone on one thread, as in a Serve replica (two threads on a shared 2-core
    machine spend most of their time waiting for each other)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def services(tmp_path: Path) -> Services:
    svc = make_services(tmp_path, services=["inspection"])
    worker = LocalHandle(InspectionWorker(svc.blobs, work_size=128))
    svc.inspection.handles = InspectionHandles(inspection_trainer=worker, inspection_predictor=worker)
    return svc


@pytest.fixture()
def http(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services), base_url="http://testserver/api") as client:
        yield client


@pytest.fixture()
def credentials(services: Services) -> tuple[str, str]:
    return services.clients.create("factory")


def make_sdk(http: TestClient, credentials: tuple[str, str], language: str = "en") -> VisualInspectionSDK:
    return VisualInspectionSDK(credentials[0], credentials[1], "http://testserver/api", language, http_client=http)


@pytest.fixture()
def sdk(http: TestClient, credentials: tuple[str, str], services: Services, tmp_path: Path) -> VisualInspectionSDK:
    client = make_sdk(http, credentials)
    lic = tmp_path / "license.key"
    lic.write_text(issue_license(services.state, credentials[0]))
    client.activate_license("test_client", str(lic))
    return client


def write_images(folder: Path, prefix: str, images: list[np.ndarray]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, img in enumerate(images):
        path = folder / f"{prefix}{i}.png"
        Image.fromarray(img).save(path)
        names.append(str(path))
    return names


@pytest.fixture(scope="session")
def texture_set() -> dict[str, object]:
    """Small brick crops: 8 good for training, 2 good and 2 defective for testing."""
    rng = np.random.default_rng(7)
    goods = synthetic.good_crops("brick", 12, 96, rng)
    defects = [synthetic.add_defect(img, kind, rng, 0.05) for img, kind in zip(goods[10:], ("blob", "stain"), strict=True)]
    return {"train": goods[:8], "test_good": goods[8:10], "defects": defects}
