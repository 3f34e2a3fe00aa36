"""License files: an HMAC-SHA256-signed JSON payload bound to one API client.

Format (one line of text)::

    PERCEPT-LICENSE-1.<base64url(payload JSON)>.<base64url(HMAC-SHA256(key, "PERCEPT-LICENSE-1." + payload))>

The payload holds ``license_id``, ``client_id``, ``issued_at`` and ``expires_at`` (or null).
The key is generated on first use and kept in the state store (namespace
``inspection_secrets``), so only this deployment's operators (through ``percept license
issue``) can issue a license it accepts; a forged or edited file is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any

from percept.storage.state import StateStore

PREFIX = "PERCEPT-LICENSE-1"
SECRETS_NS = "inspection_secrets"


class LicenseError(ValueError):
    """A license that is malformed, forged, expired or for another client."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def license_key(store: StateStore) -> bytes:
    """The signing key, created on first use (every replica and the CLI share it)."""
    store.put_if_absent(SECRETS_NS, "license", {"key": secrets.token_urlsafe(48), "created": time.time()})
    doc = store.get(SECRETS_NS, "license")
    assert doc is not None
    return str(doc["key"]).encode()


def issue_license(store: StateStore, client_id: str, valid_days: float | None = None) -> str:
    """A signed license text for ``client_id``."""
    now = int(time.time())
    payload = {
        "license_id": uuid.uuid4().hex,
        "client_id": client_id,
        "issued_at": now,
        "expires_at": now + int(valid_days * 86400) if valid_days else None,
    }
    body = f"{PREFIX}.{_b64(json.dumps(payload, separators=(',', ':')).encode())}"
    signature = hmac.new(license_key(store), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(signature)}\n"


def verify_license(store: StateStore, text: str, client_id: str) -> dict[str, Any]:
    """The payload of a valid license for ``client_id``; LicenseError otherwise."""
    parts = text.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise LicenseError("The license file is malformed or its signature is wrong")
    body = f"{parts[0]}.{parts[1]}"
    expected = hmac.new(license_key(store), body.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(parts[2])
        payload = json.loads(_unb64(parts[1]))
    except (ValueError, json.JSONDecodeError):
        raise LicenseError("The license file is malformed or its signature is wrong") from None
    if not hmac.compare_digest(expected, given) or not isinstance(payload, dict):
        raise LicenseError("The license file is malformed or its signature is wrong")
    if payload.get("client_id") != client_id:
        raise LicenseError("The license was issued to another client")
    expires = payload.get("expires_at")
    if expires is not None and float(expires) < time.time():
        raise LicenseError("The license has expired")
    return payload
