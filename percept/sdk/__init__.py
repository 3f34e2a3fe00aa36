"""The inspection API's Python SDK (the vendor's ``hacarus_visual_inspection`` client)."""

from percept.sdk.client import VisualInspectionSDK
from percept.sdk.errors import APIError

__all__ = ["APIError", "VisualInspectionSDK"]
