"""One Ray session and one Serve application for the whole integration tier.

``percept_app`` runs the real ``build_app`` on a temporary data directory and an HTTP port
of its own, and yields an :class:`AppUnderTest` with the base URL. Set
``PERCEPT_TEST_SERVICES=tagger,search`` to start only some services while developing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from percept.testing import AppUnderTest, free_port, start_app

pytestmark = pytest.mark.integration
DEBUG_ADMIN = "task-ann"


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "PERCEPT_LOG_JSON": "false"}})
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def percept_app(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUnderTest]:
    wanted = os.environ.get("PERCEPT_TEST_SERVICES")
    if wanted is None:
        services = ["reading", "inspection", "tagger", "search", "correction"]
    else:  # e.g. "tagger,search"; "none" starts the platform alone
        services = [s for s in wanted.split(",") if s and s != "none"]
    root = tmp_path_factory.mktemp("percept")
    # The search crawler must reach the tests' own web servers on 127.0.0.1.
    service_config = {"search": {"allow_private_networks": True}}
    # The platform tests use the debug routes (echo, hop, task self-test) as this admin.
    yield start_app(root, services, free_port(), service_config=service_config, debug_routes=True,
                    admins=[f"user:{DEBUG_ADMIN}"])
