"""Fixtures every test file may ask for by name (pytest finds them here; never import this file).

Builders that tests call with their own arguments live in helper modules beside the tests:
``small_collection`` (synthetic models with known features), ``serving_fixtures`` (a store and an
in-process serving cluster), ``fleet_support`` (small real torch models for the fleet),
``web_support`` (a web store and process) and ``independent`` (the paper's formulas in float64).
"""

from __future__ import annotations

import pytest
from small_collection import SmallCollection, build_small_collection


@pytest.fixture(scope="session")
def small() -> SmallCollection:
    """Eight synthetic models (300 samples, 64-d, rank 8) with their raw features and statistics."""
    return build_small_collection()
