"""The web page's search round trip, measured in a real headless Chromium.

    .venv/bin/python tools/bench_web.py --store .modelverse/demo-store        # `make demo`'s store
    .venv/bin/python tools/bench_web.py --store S --repeats 40 --out docs/benchmarks/web.json

Starts a local cluster (2 shards, the bundled encoder, the zoo's generators, API keys) with the
web service in front, then, per query, reads the browser's Navigation Timing entry of the result
page: from the start of the navigation (the link followed, or the form submitted with its picture)
to ``domContentLoadedEventEnd`` (the results rendered) and to ``loadEventEnd`` (also every
thumbnail loaded). Text queries are links (GET /search?q=...); picture queries upload a held-out
Fashion-MNIST image through the form (POST). Also reports the server alone (`requests`, no
browser) and the thumbnails' caching headers. Prints a table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import requests
from PIL import Image

from modelverse.serving.loopback_cluster import Cluster, ClusterSpec

TEXTS = ["a photo of a sneaker", "a photo of trousers", "a photo of a bag", "a photo of a dress",
         "a photo of a face", "a painting of a blue eye", "a handwritten digit three", "a drawing of an elephant",
         "a photo of a coat", "a photo of a sandal"]
PICTURE_CLASSES = ["trouser", "sneaker", "bag", "dress", "coat", "sandal"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--window-size=1280,1600"]
NAVIGATION = ("const e = performance.getEntriesByType('navigation')[0];"
              "return [e.responseEnd - e.startTime, e.domContentLoadedEventEnd - e.startTime,"
              " e.loadEventEnd - e.startTime];")


def browser(profile: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                            options=options)


def navigation(driver: Any) -> list[float]:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 60).until(lambda d: d.execute_script(
        "const e = performance.getEntriesByType('navigation')[0]; return e && e.loadEventEnd > 0"))
    return [float(v) for v in driver.execute_script(NAVIGATION)]


def text_round_trip(driver: Any, base: str, text: str) -> list[float]:
    driver.get(f"{base}/search?" + requests.compat.urlencode({"q": text}))
    assert driver.find_elements("css selector", "#cards > li"), f"no results for {text!r}"
    return navigation(driver)


def picture_round_trip(driver: Any, base: str, picture: Path) -> list[float]:
    driver.get(f"{base}/")
    driver.find_element("css selector", "#image").send_keys(str(picture))
    driver.find_element("css selector", "#search-button").click()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 60).until(lambda d: d.find_elements("css selector", "#results-summary, #error"))
    assert driver.find_elements("css selector", "#cards > li"), f"no results for {picture.name}"
    return navigation(driver)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 1), "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
            "max": round(ordered[-1], 1), "n": len(ordered)}


def gateway_only(cluster: Cluster, repeats: int) -> list[float]:
    """The same text searches straight to the gateway (gRPC, the read key): what the page adds is
    the difference."""
    from modelverse.v1 import search_pb2, search_pb2_grpc

    assert cluster.gateway is not None
    stub = search_pb2_grpc.SearchServiceStub(cluster.channel(cluster.gateway, cluster.read_key))
    times = []
    for i in range(repeats):
        request = search_pb2.SearchRequest(top_k=12)
        request.parts.add(text=TEXTS[i % len(TEXTS)])
        started = time.perf_counter()
        stub.Search(request, timeout=60)
        times.append(1000 * (time.perf_counter() - started))
    return times


def measure(base: str, pictures: list[Path], repeats: int, profile: str) -> dict[str, Any]:
    driver = browser(profile)
    try:
        for text in TEXTS[:3]:  # warm: the gateway's encoder, the channel, the thumbnail cache
            text_round_trip(driver, base, text)
        picture_round_trip(driver, base, pictures[0])
        texts = [text_round_trip(driver, base, TEXTS[i % len(TEXTS)]) for i in range(repeats)]
        images = [picture_round_trip(driver, base, pictures[i % len(pictures)]) for i in range(repeats)]
    finally:
        driver.quit()
    server = []
    for i in range(repeats):
        started = time.perf_counter()
        answer = requests.get(f"{base}/search", params={"q": TEXTS[i % len(TEXTS)]}, timeout=60)
        server.append(1000 * (time.perf_counter() - started))
        answer.raise_for_status()
    return {
        "text": {"response_ms": summary([t[0] for t in texts]), "rendered_ms": summary([t[1] for t in texts]),
                 "loaded_ms": summary([t[2] for t in texts])},
        "picture": {"response_ms": summary([t[0] for t in images]), "rendered_ms": summary([t[1] for t in images]),
                    "loaded_ms": summary([t[2] for t in images])},
        "text_server_only_ms": summary(server),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a store of the bundled zoo (`make demo` makes one)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", default="docs/benchmarks/web.json")
    args = parser.parse_args()

    from modelverse.zoo import heldout_images

    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    pictures = []
    for name in PICTURE_CLASSES:
        path = work / f"{name}.png"
        Image.fromarray(heldout_images("fashion-mnist", name, limit=1)[0]).save(path)
        pictures.append(path)
    spec = ClusterSpec(store=Path(args.store).resolve(), run_dir=work / "run", shards=2, encoder="bundled",
                       gateway={"generators": "zoo"}, web_port=0)
    with Cluster(spec) as cluster:
        assert cluster.web is not None
        base = cluster.web.url.rstrip("/")
        thumb = requests.get(f"{base}/thumbnail", params={"model": "fashion-vae-sneaker", "v": 1, "i": 0}, timeout=30)
        results = measure(base, pictures, args.repeats, str(work / "profile"))
        results["text_gateway_only_ms"] = summary(gateway_only(cluster, args.repeats))
        models = len(requests.get(f"{base}/search", params={"q": "x", "k": 60}, timeout=60).text.split('class="card"')) - 1
    shutil.rmtree(work, ignore_errors=True)
    report = {
        "benchmark": "web search round trip (tools/bench_web.py)",
        "date": date.today().isoformat(), "machine": f"{platform.node()} ({platform.machine()}, 2-core VM)",
        "store": str(args.store), "load_average_1min_at_end": round(os.getloadavg()[0], 1), "models_in_results_of_k60": models, "repeats": args.repeats,
        "thumbnail_headers": {k: thumb.headers.get(k) for k in ("cache-control", "etag", "content-type")},
        **results,
    }
    print(f"{'query':<10} {'response p50':>13} {'rendered p50':>13} {'rendered p90':>13} {'loaded p50':>11}")
    for kind in ("text", "picture"):
        r = results[kind]
        print(f"{kind:<10} {r['response_ms']['p50']:>10.1f} ms {r['rendered_ms']['p50']:>10.1f} ms "
              f"{r['rendered_ms']['p90']:>10.1f} ms {r['loaded_ms']['p50']:>8.1f} ms")
    print(f"text, server only (requests): p50 {results['text_server_only_ms']['p50']} ms; "
          f"the gateway alone (gRPC): p50 {results['text_gateway_only_ms']['p50']} ms")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"thumbnail headers: {report['thumbnail_headers']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
