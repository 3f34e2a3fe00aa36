"""``VisualInspectionSDK``: the vendor's Python client, pointed at Percept's ``/api``.

    sdk = VisualInspectionSDK(client_id, client_secret, "http://host:8000/api", language="ja")
    sdk.activate_license("license.key")
    sdk.upload(["a.png", "b.png"], is_good=True)

Every method returns the unwrapped ``data`` and raises :class:`APIError` on an error answer.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import httpx

from percept.sdk.errors import APIError


class VisualInspectionSDK:
    """Client of the inspection API; authorises on construction."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        api_url: str,
        language: str = "en",
        *,
        timeout: float = 120.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.language = language
        # ``http_client`` lets tests pass e.g. a Starlette TestClient (base_url ending in /api).
        self._http = http_client or httpx.Client(base_url=self.api_url, timeout=timeout)
        self.access_token: str | None = None
        self.authorize(client_id, client_secret)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VisualInspectionSDK:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def set_language(self, language: str) -> None:
        self.language = language

    # plumbing -------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Accept-Language": self.language}
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        return headers

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, headers=self._headers(), **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise APIError(response.status_code, response.text[:200] or response.reason_phrase) from None
        if response.status_code >= 400 or "errors" in body:
            err = body.get("errors") or {}
            raise APIError(
                int(err.get("status", response.status_code)), err.get("title") or "", err.get("detail"),
                (err.get("source") or {}).get("pointer"),
            )
        return body.get("data")

    # the vendor's methods -------------------------------------------------------------------
    def authorize(self, client_id: str, client_secret: str) -> dict[str, Any]:
        data = self._call("POST", "/auth/token", json={
            "client_id": client_id, "client_secret": client_secret, "grant_type": "client_credentials"})
        self.access_token = data["access_token"]
        return data  # type: ignore[no-any-return]

    def activate_license(self, *args: str) -> Any:
        """``activate_license(path)`` or, as the vendor's docs write it, ``activate_license(client, path)``."""
        if not args:
            raise TypeError("activate_license needs the license file path")
        path = Path(args[-1])
        with path.open("rb") as fh:
            return self._call("POST", "/v1/license", files={"license": (path.name, fh, "application/octet-stream")})

    def get_version_number(self) -> Any:
        return self._call("GET", "/auth/app_version")

    def get_items(self) -> Any:
        return self._call("GET", "/v1/items")

    def get_algorithms(self) -> Any:
        return self._call("GET", "/v1/algorithms")

    def get_models(self) -> Any:
        return self._call("GET", "/v1/models")

    def delete_models(self, model_ids: list[Any]) -> Any:
        return self._call("DELETE", "/v1/model", json={"model_ids": list(model_ids)})

    def train(
        self, algorithm_id: str, model_name: str, algo_param: list[dict[str, Any]] | None, item_ids: list[str]
    ) -> Any:
        return self._call("POST", "/v1/train", json={
            "algorithm_id": algorithm_id, "name": model_name, "override_params": algo_param, "item_ids": list(item_ids)})

    def upload(self, filenames: list[str], is_good: bool | None = None) -> Any:
        """Upload for training (``is_good`` True/False) or for prediction (``is_good`` None)."""
        handles = []
        try:
            files = []
            for i, name in enumerate(filenames):
                fh = open(name, "rb")  # noqa: SIM115 - closed below
                handles.append(fh)
                ext = Path(name).suffix.lstrip(".").lower()
                files.append((f"files[{i}]", (Path(name).name, fh, mimetypes.guess_type(name)[0] or ext)))
            form = {
                "training": "true" if is_good is not None else "false",
                "good": "" if is_good is None else ("true" if is_good else "false"),
            }
            return self._call("POST", "/v1/upload", data=form, files=files or None)
        finally:
            for fh in handles:
                fh.close()

    def set_annotations(self, annotations: list[dict[str, Any]], image_id: int | str) -> Any:
        return self._call("POST", f"/v1/image/{image_id}/annotation", json={"annotations": annotations})

    def get_item(self, item_id: str, show_annotations: bool = True, show_assessments: bool = True) -> Any:
        return self._call("GET", f"/v1/item/{item_id}", params={
            "show_annotations": str(show_annotations), "show_assessments": str(show_assessments)})

    def serve(self, item_ids: list[str], model_id: Any = None) -> Any:
        return self._call("POST", "/v1/serve", json={"item_ids": list(item_ids), "model_id": "" if model_id is None else model_id})

    def get_processes(self, *_: Any) -> Any:
        """Running training and prediction work (the vendor's docs pass arguments it ignores)."""
        return self._call("GET", "/v1/workers")
