"""The inspection service's records in the state store, every one owned by ``client:<id>``.

Namespaces: ``inspection_items`` (key ``<owner>|<item_id>``: item ids are file stems, unique
per client only), ``inspection_item_index`` (item id -> owners, to tell 404 from "another
client's item"), ``inspection_images`` and ``inspection_models`` (integer ids, as the vendor's
API has), ``inspection_licenses`` (one per client) and ``inspection_seq`` (id counters).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from percept.storage.state import StateStore

ITEMS = "inspection_items"
INDEX = "inspection_item_index"
IMAGES = "inspection_images"
MODELS = "inspection_models"
LICENSES = "inspection_licenses"
SEQ = "inspection_seq"

Doc = dict[str, Any]


def http_date(ts: float) -> str:
    """``Mon, 10 Jun 2019 08:22:02 GMT`` as the vendor's item lists show dates."""
    return formatdate(ts, usegmt=True)


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _setter(field: str, value: Any) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        doc[field] = value

    return apply


class InspectionRepo:
    """Typed access to the inspection namespaces of a :class:`StateStore`."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    # ids ------------------------------------------------------------------------------------
    def next_id(self, name: str, start: int = 1000) -> int:
        def bump(doc: Doc | None) -> Doc:
            return {"value": (doc or {"value": start})["value"] + 1}

        doc = self.state.update(SEQ, name, bump)
        assert doc is not None
        return int(doc["value"])

    # licenses -------------------------------------------------------------------------------
    def license(self, owner: str) -> Doc | None:
        return self.state.get(LICENSES, owner)

    def activate_license(self, owner: str, payload: Doc) -> bool:
        """Store the client's license; False when it already has one."""
        return self.state.put_if_absent(
            LICENSES, owner, {"owner": owner, "activated_at": time.time(), **payload}
        )

    # items ----------------------------------------------------------------------------------
    @staticmethod
    def _item_key(owner: str, item_id: str) -> str:
        return f"{owner}|{item_id}"

    def get_item(self, owner: str, item_id: str) -> Doc | None:
        return self.state.get(ITEMS, self._item_key(owner, item_id))

    def item_owners(self, item_id: str) -> list[str]:
        doc = self.state.get(INDEX, item_id)
        return list(doc["owners"]) if doc else []

    def list_items(self, owner: str) -> list[Doc]:
        return sorted(self.state.list(ITEMS, owner=owner), key=lambda d: d["created_at"])

    def put_item(self, doc: Doc) -> None:
        owner, item_id = doc["owner"], doc["item_id"]
        self.state.put(ITEMS, self._item_key(owner, item_id), doc)

        def add(index: Doc | None) -> Doc:
            owners = set((index or {}).get("owners", []))
            owners.add(owner)
            return {"owners": sorted(owners)}

        self.state.update(INDEX, item_id, add)

    def update_item(self, owner: str, item_id: str, fn: Callable[[Doc], None]) -> Doc | None:
        def apply(doc: Doc | None) -> Doc | None:
            if doc is not None:
                fn(doc)
            return doc

        return self.state.update(ITEMS, self._item_key(owner, item_id), apply)

    # images ---------------------------------------------------------------------------------
    def put_image(self, doc: Doc) -> None:
        self.state.put(IMAGES, str(doc["image_id"]), doc)

    def get_image(self, image_id: int) -> Doc | None:
        return self.state.get(IMAGES, str(image_id))

    def delete_image(self, image_id: int) -> None:
        self.state.delete(IMAGES, str(image_id))

    def update_image(self, image_id: int, fn: Callable[[Doc], None]) -> Doc | None:
        def apply(doc: Doc | None) -> Doc | None:
            if doc is not None:
                fn(doc)
            return doc

        return self.state.update(IMAGES, str(image_id), apply)

    # models ---------------------------------------------------------------------------------
    def put_model(self, doc: Doc) -> None:
        self.state.put(MODELS, str(doc["model_id"]), doc)

    def get_model(self, owner: str, model_id: int) -> Doc | None:
        doc = self.state.get(MODELS, str(model_id))
        return doc if doc is not None and doc.get("owner") == owner else None

    def update_model(self, model_id: int, fn: Callable[[Doc], None]) -> Doc | None:
        def apply(doc: Doc | None) -> Doc | None:
            if doc is not None:
                fn(doc)
            return doc

        return self.state.update(MODELS, str(model_id), apply)

    def list_models(self, owner: str) -> list[Doc]:
        return sorted(self.state.list(MODELS, owner=owner), key=lambda d: d["model_id"])

    def delete_model(self, model_id: int) -> None:
        self.state.delete(MODELS, str(model_id))

    def active_model(self, owner: str) -> Doc | None:
        """The client's default model: the one marked active, else the newest usable one."""
        usable = [m for m in self.list_models(owner) if m["status"] == "active"]
        marked = [m for m in usable if m.get("active")]
        chosen = marked or usable
        return chosen[-1] if chosen else None

    def set_active(self, owner: str, model_id: int) -> None:
        """Make ``model_id`` the client's one active model."""
        for doc in self.list_models(owner):
            want = doc["model_id"] == model_id
            if bool(doc.get("active")) != want:
                self.update_model(doc["model_id"], _setter("active", want))
