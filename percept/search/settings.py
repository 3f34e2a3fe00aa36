"""The search service's settings: ``service_config.search`` in ``serve_config.yaml``.

One process-level override exists for test and lab setups:
``PERCEPT_SEARCH_ALLOW_PRIVATE_NETWORKS=1`` (:mod:`percept.settings`) lets the crawler reach
loopback/private hosts even when the config does not say so.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from percept.search.scrape import ScrapeLimits
from percept.settings import ServiceSettings, get_settings


class SearchSettings(ServiceSettings):
    """``service_config.search`` in serve_config.yaml."""

    start_urls: list[str] = Field(default_factory=list, description="pages /scrape crawls when none are given")
    allow_private_networks: bool = False
    scrape: ScrapeLimits = Field(default_factory=ScrapeLimits)
    max_upload_bytes: int = Field(20 * 2**20, ge=1024)
    background_method: Literal["auto", "grabcut", "border", "u2net"] = Field(
        "auto", description="auto: U²-Net when u2net.onnx is in the models dir, else GrabCut"
    )
    resnet_fallback: Literal["none", "efficientnet"] = Field(
        "efficientnet",
        description="efficientnet (default): EfficientNet-Lite0 stands in while ResNet34 weights are missing, "
                    "and every answer says so; none: the ResNet routes answer 503",
    )
    ann_threshold: int = Field(20_000, ge=1, description="collections this large use HNSW instead of exact search")
    complement_tolerance_deg: float = Field(30.0, gt=0, le=90)
    complement_min_fraction: float = Field(0.5, gt=0, le=1)
    embed_batch_size: int = Field(16, ge=1, le=256)

    def limits(self) -> ScrapeLimits:
        """Crawler limits with the private-network switch from config or environment."""
        allow = self.allow_private_networks or self.scrape.allow_private_networks
        allow = allow or get_settings().search_allow_private_networks
        return self.scrape.model_copy(update={"allow_private_networks": allow})

