"""Settings shared by every test: offline model hubs, quiet logs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PERCEPT_LOG_JSON", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
