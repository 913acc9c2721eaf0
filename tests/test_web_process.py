"""The web process on its own: HTTPS with the certificates it is given, and a clear 503 page
(not a crash) while no gateway answers at its address. Real processes, no cluster."""

from __future__ import annotations

import socket

import pytest
import requests
from web_support import WebProcess

from modelverse.security.certs import LocalCA

# Slow tier: starts the web page as its own process.
pytestmark = pytest.mark.slow


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def https_web(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("web-https")
    ca = LocalCA.create()
    ca_file = ca.write_ca(root / "ca.pem")
    pair = ca.issue(root, "web", client=False)
    web = WebProcess(f"127.0.0.1:{closed_port()}", root, "--https-cert", str(pair.cert), "--https-key", str(pair.key),
                     scheme="https", ca=ca_file)
    yield web, ca_file
    web.stop()


def test_the_page_serves_https_with_its_certificate(https_web) -> None:
    web, ca_file = https_web
    assert web.url.startswith("https://")
    assert requests.get(f"{web.url}/healthz", verify=str(ca_file), timeout=10).json() == {"status": "ok"}
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{web.url}/healthz", timeout=10)  # not trusted without the CA
    css = requests.get(f"{web.url}/static/style.css", verify=str(ca_file), timeout=10)
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_without_a_gateway_every_page_says_so_with_503_and_the_process_keeps_serving(https_web) -> None:
    web, ca_file = https_web
    for path in ["/", "/search?q=a+photo+of+a+sneaker", "/models/fashion-vae-sneaker"]:
        answer = requests.get(f"{web.url}{path}", verify=str(ca_file), timeout=30)
        assert answer.status_code == 503, path
        assert "The search service is not answering right now" in answer.text
        assert 'id="search-form"' in answer.text  # the form is still there to try again
    thumbnail = requests.get(f"{web.url}/thumbnail?model=m&v=1&i=0", verify=str(ca_file), timeout=30)
    assert thumbnail.status_code == 503
    assert web.popen.poll() is None
