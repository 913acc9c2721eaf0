"""The serving processes start without torch: the gateway, the shards and an admin without an
encoder never run a model, and torch alone is ~300 MB of resident memory per process."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Slow tier: a fresh Python process per server module (what it imports at start).
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("module", ["modelverse.serving.gateway.__main__", "modelverse.serving.shard.__main__",
                                    "modelverse.serving.admin.__main__"])
def test_serving_process_modules_do_not_import_torch(module: str) -> None:
    probe = f"import sys, importlib; importlib.import_module({module!r}); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
