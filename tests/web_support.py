"""A small zoo store, a process cluster over it and the web service in front, for the web tests
and the web benchmark: a few bundled zoo models indexed with few samples (minutes for all 51)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from modelverse.fleet.embedded import index_embedded
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.requests import bundled_requests
from modelverse.store.directory import DirectoryStore
from modelverse.store.metadata import ModelMetadata

WEB_ZOO = (
    "fashion-dcgan-sneaker", "fashion-vae-sneaker", "fashion-dcgan-trouser", "fashion-vae-trouser",
    "fashion-vae-bag", "fashion-vae-dress", "generateme-faces-dcgan", "digits-vae-three",
)
SAMPLES = 32
FEATURES_ONLY_ID = "features/escaped <b>model</b>"
HOSTILE_DESCRIPTION = '<script>window.hacked = 1</script><b id="injected">bold</b> & "quoted"'


def build_web_store(root: Path) -> DirectoryStore:
    """The WEB_ZOO models indexed with the bundled encoder, plus one model added from features
    (no thumbnails) whose id and description hold HTML."""
    wanted = [r for r in bundled_requests() if r.model_id in WEB_ZOO]
    records = index_embedded(root, wanted, "bundled", SamplePlan(max_samples=SAMPLES, chunk_size=SAMPLES),
                             torch_threads=2)
    failed = [(r.model_id, r.error) for r in records if r.error]
    if failed:
        raise RuntimeError(f"indexing failed: {failed}")
    store = DirectoryStore.open(root)
    store.put(ModelMetadata(FEATURES_ONLY_ID, name="Features only <i>model</i>", description=HOSTILE_DESCRIPTION,
                            tags=("bag",), family="vae", resolution=28), store.get_stats("fashion-vae-bag"))
    return store


def wait_http(url: str, ca: Path | None = None, timeout_s: float = 60.0) -> None:
    context = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s} s")
        time.sleep(0.1)


class WebProcess:
    """``python -m modelverse.web`` on a free port in front of ``gateway``."""

    def __init__(self, gateway: str, run_dir: Path, *extra: str, scheme: str = "http", ca: Path | None = None) -> None:
        port_file = run_dir / "web.port"
        port_file.unlink(missing_ok=True)
        self.log_path = run_dir / "web.log"
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "modelverse.web", "--gateway", gateway, "--port", "0",
                 "--port-file", str(port_file), "--timeout", "20", *extra],
                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
            )
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the web service did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        self.url = f"{scheme}://127.0.0.1:{int(port_file.read_text())}"
        wait_http(self.url + "/healthz", ca)

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
