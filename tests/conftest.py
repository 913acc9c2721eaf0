"""Fixtures every test file may ask for by name (pytest finds them here; never import this file).

Builders that tests call with their own arguments live in helper modules beside the tests:
``small_collection`` (synthetic models with known features), ``serving_fixtures`` (a store and an
in-process serving cluster), ``fleet_support`` (small real torch models for the fleet),
``web_support`` (a web store and process) and ``independent`` (the paper's formulas in float64).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from small_collection import SmallCollection, build_small_collection

if TYPE_CHECKING:  # imported by the fixture itself: most test modules never start a Redis
    from modelverse.fleet.local_fleet import RedisServer


@pytest.fixture(scope="session")
def small() -> SmallCollection:
    """Eight synthetic models (300 samples, 64-d, rank 8) with their raw features and statistics."""
    return build_small_collection()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a free port for the test module (its data in a temporary folder)."""
    from modelverse.fleet.local_fleet import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()
