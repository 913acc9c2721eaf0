"""The web page on a real cluster (shards, gateway with the bundled encoder and the zoo's
generators, API keys) over a few bundled zoo models: HTTP checks with `requests` and the issue's
six scenarios in a real headless Chromium (Debian's `chromium` + `chromium-driver`, Selenium).

The store is built once per session (web_support.build_web_store: 8 zoo models, 32 samples)."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from web_support import FEATURES_ONLY_ID, build_web_store

from modelverse.serving.loopback_cluster import Cluster, ClusterSpec

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--window-size=1280,1600"]
WAIT_S = 30.0


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("web")
    build_web_store(root / "store")
    spec = ClusterSpec(store=root / "store", run_dir=root / "run", shards=2, encoder="bundled", gateway={"generators": "zoo"},
                       web_port=0)
    cluster = Cluster(spec).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def page(cluster: Cluster, path: str) -> str:
    assert cluster.web is not None
    return cluster.web.url.rstrip("/") + path


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("chromium and chromium-driver are missing: tools/install_system_data.sh installs them")
    profile = tempfile.mkdtemp(prefix="modelverse-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, condition, what: str, timeout: float = WAIT_S):  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition, message=f"waiting for {what}")


def css(driver, selector: str):  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def loaded(driver, image) -> bool:  # type: ignore[no-untyped-def]
    return bool(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image))


def first_card_tags(driver) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.text for t in css(driver, "#cards > li:first-child ul.tags li")]


def search_page(driver, cluster: Cluster) -> None:  # type: ignore[no-untyped-def]
    driver.get(page(cluster, "/"))
    wait_for(driver, lambda d: css(d, "#search-form"), "the search form")


def submit(driver) -> None:  # type: ignore[no-untyped-def]
    css(driver, "#search-button")[0].click()
    wait_for(driver, lambda d: css(d, "#results-summary") or css(d, "#error"), "an answer")


def png_file(folder: Path, name: str, pixels: np.ndarray) -> Path:
    path = folder / name
    Image.fromarray(pixels).save(path)
    return path


# -- the six browser scenarios of issue 15 ------------------------------------------------------------


def test_text_search_puts_a_sneaker_model_first_with_its_thumbnails(cluster: Cluster, browser) -> None:
    search_page(browser, cluster)
    css(browser, "#q")[0].send_keys("a photo of a sneaker")
    submit(browser)
    assert "sneaker" in first_card_tags(browser)
    thumbnails = css(browser, "#cards > li:first-child img.thumb")
    assert len(thumbnails) == 8
    wait_for(browser, lambda d: all(loaded(d, t) for t in thumbnails), "the thumbnails to load")
    # The address is the shareable link: opened afresh, it gives the same answer.
    assert "q=a+photo+of+a+sneaker" in browser.current_url
    first = css(browser, "#cards > li:first-child h3")[0].text
    browser.get(browser.current_url)
    assert css(browser, "#cards > li:first-child h3")[0].text == first
    assert "1st + 2nd moment" in css(browser, "#method-used")[0].text


def test_uploading_the_held_out_trouser_picture_puts_a_trouser_model_first(cluster: Cluster, browser,
                                                                           tmp_path: Path) -> None:
    from modelverse.zoo import heldout_images

    picture = png_file(tmp_path, "trouser.png", heldout_images("fashion-mnist", "trouser", limit=1)[0])
    search_page(browser, cluster)
    css(browser, "#image")[0].send_keys(str(picture))
    submit(browser)
    assert "trousers" in first_card_tags(browser)
    assert "Gaussian density" in css(browser, "#method-used")[0].text  # the default for images, shown


def test_drawing_strokes_on_the_canvas_and_searching_shows_results(cluster: Cluster, browser) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    search_page(browser, cluster)
    canvas = css(browser, "#sketch-canvas")[0]
    actions = ActionChains(browser)
    # a closed outline and a diagonal, drawn as a person would: press, move, release
    actions.move_to_element_with_offset(canvas, -60, -60).click_and_hold()
    for dx, dy in [(60, -60), (60, 60), (-60, 60), (-60, -60)]:
        actions.move_by_offset(dx, dy)
    actions.release().move_to_element_with_offset(canvas, -80, 80).click_and_hold().move_by_offset(160, -160).release()
    actions.perform()
    dark = browser.execute_script(
        "const d = arguments[0].getContext('2d').getImageData(0, 0, 256, 256).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++; return n;", canvas)
    assert dark > 500  # the strokes are on the canvas
    submit(browser)
    assert len(css(browser, "#cards > li")) > 0
    assert "searches with uploaded pictures have no link" in browser.page_source.lower()


def dark_pixels(driver, canvas) -> int:  # type: ignore[no-untyped-def]
    return int(driver.execute_script(
        "const d = arguments[0].getContext('2d').getImageData(0, 0, 256, 256).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++; return n;", canvas))


def stroke(driver, canvas, dx: int, dy: int) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element_with_offset(canvas, -50, 0).click_and_hold().move_by_offset(dx, dy).release().perform()


def test_every_control_is_labelled_and_the_canvas_tools_the_drop_zone_and_the_mix_work(
        cluster: Cluster, browser, tmp_path: Path) -> None:
    from modelverse.zoo import heldout_images

    search_page(browser, cluster)
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input:not([type=hidden]):not([hidden]), select, canvas, textarea')]"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')"
        " && !e.getAttribute('aria-labelledby')).map(e => e.id)")
    assert unlabelled == []
    assert browser.execute_script("return [...document.images].every(i => i.hasAttribute('alt'))")
    # stroke width, undo, clear
    canvas = css(browser, "#sketch-canvas")[0]
    stroke(browser, canvas, 100, 0)
    thin = dark_pixels(browser, canvas)
    browser.execute_script("const w = document.getElementById('sketch-width'); w.value = 20;"
                           "w.dispatchEvent(new Event('input'));")
    stroke(browser, canvas, 0, 100)
    both = dark_pixels(browser, canvas)
    assert thin > 0 and both - thin > 2 * thin  # the second stroke is as long and much wider
    css(browser, "#sketch-undo")[0].click()
    assert dark_pixels(browser, canvas) == thin
    css(browser, "#sketch-clear")[0].click()
    assert dark_pixels(browser, canvas) == 0
    # a picture dropped on the drop zone (the browser's own drop event with a file in it)
    pixels = heldout_images("fashion-mnist", "trouser", limit=1)[0]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    browser.execute_script(
        "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));"
        "const files = new DataTransfer(); files.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));"
        "document.getElementById('drop-zone').dispatchEvent(new DragEvent('drop', {dataTransfer: files, bubbles: true}));",
        __import__("base64").b64encode(buffer.getvalue()).decode())
    assert browser.execute_script("return document.getElementById('image').files[0].name") == "dropped.png"
    assert not css(browser, "#image-preview")[0].get_attribute("hidden")
    # text and the dropped picture together, the picture weighted 80 %, the method chosen by hand
    css(browser, "#q")[0].send_keys("a photo of trousers")
    browser.execute_script("const w = document.getElementById('weight'); w.value = 80;"
                           "w.dispatchEvent(new Event('input'));")
    assert css(browser, "#weight-value")[0].text == "80 %"
    from selenium.webdriver.support.ui import Select

    Select(css(browser, "#method")[0]).select_by_value("first_moment")
    submit(browser)
    assert "first moment" in css(browser, "#method-used")[0].text
    assert "(chosen for this kind of query)" not in css(browser, "#results-summary")[0].text
    assert "trousers" in first_card_tags(browser)
    assert css(browser, "#weight")[0].get_attribute("value") == "80"  # the form keeps what was asked


def sample_sources(driver) -> list[str]:  # type: ignore[no-untyped-def]
    return [image.get_attribute("src") for image in css(driver, "#samples img.sample")]


def test_a_model_page_draws_fresh_samples_that_a_seed_reproduces(cluster: Cluster, browser) -> None:
    browser.get(page(cluster, "/models/fashion-vae-sneaker"))
    wait_for(browser, lambda d: css(d, "#samples img.sample"), "the samples")
    assert "Samples used" in browser.page_source and "32" in css(browser, "dl.facts")[0].text
    first_seed, first = css(browser, "#seed")[0].text, sample_sources(browser)
    assert len(first) == 8 and all(loaded(browser, i) for i in css(browser, "#samples img.sample"))
    css(browser, "#more")[0].click()
    wait_for(browser, lambda d: css(d, "#seed") and css(d, "#seed")[0].text != first_seed, "a new seed")
    assert sample_sources(browser) != first
    browser.get(page(cluster, f"/models/fashion-vae-sneaker?seed={first_seed}"))
    assert sample_sources(browser) == first  # the same seed draws the same images
    assert css(browser, "#similar > li")  # "similar models"
    # "search with this image" searches with the sample (drawn again from its model and seed)
    css(browser, "#samples a.search-with")[0].click()
    wait_for(browser, lambda d: css(d, "#results-summary"), "results")
    assert css(browser, "#cards > li") and "sample_of=fashion-vae-sneaker" in css(browser, "#share-link")[0].text


def test_a_stopped_gateway_gives_503_and_the_page_recovers(cluster: Cluster, browser) -> None:
    query = page(cluster, "/search?q=a+photo+of+a+bag")
    assert requests.get(query, timeout=30).status_code == 200
    cluster.stop_gateway()
    try:
        answer = requests.get(query, timeout=30)
        assert answer.status_code == 503
        browser.get(query)
        assert "not answering" in css(browser, "#error-message")[0].text
        assert css(browser, "#search-form")  # the form is still there, and the page loaded
    finally:
        cluster.restart_gateway()
    deadline = time.monotonic() + WAIT_S
    while requests.get(query, timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the page did not recover after the gateway returned"
        time.sleep(0.2)
    browser.get(query)
    assert css(browser, "#cards > li")


def test_a_20_mb_upload_and_a_corrupt_file_get_a_clear_message(cluster: Cluster, browser, tmp_path: Path) -> None:
    big = tmp_path / "huge.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(20 * 1000 * 1000))
    search_page(browser, cluster)
    css(browser, "#image")[0].send_keys(str(big))
    submit(browser)
    assert "The upload is 20.0 MB" in css(browser, "#error-message")[0].text
    corrupt = tmp_path / "photo.png"
    corrupt.write_bytes(b"this is not a picture at all")
    css(browser, "#image")[0].send_keys(str(corrupt))  # the error page keeps the form
    submit(browser)
    assert "“photo.png” is not a picture this page can read" in css(browser, "#error-message")[0].text
    # a picture whose header is fine but whose data is cut off: the gateway's decoder says so
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, dtype=np.uint8)).save(buffer, format="PNG")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(buffer.getvalue()[:60])
    css(browser, "#image")[0].send_keys(str(truncated))
    submit(browser)
    message = css(browser, "#error-message")[0].text
    assert "BytesIO" not in message and ("not a picture" in message or "not a readable image" in message)
    # the service keeps serving
    search_page(browser, cluster)
    css(browser, "#q")[0].send_keys("a photo of a dress")
    submit(browser)
    assert "dress" in first_card_tags(browser)


# -- HTTP: status codes, escaping, caching, filters -----------------------------------------------


def test_oversized_and_corrupt_uploads_have_their_status_codes(cluster: Cluster) -> None:
    url = page(cluster, "/search")
    big = requests.post(url, files={"image": ("huge.png", b"\x89PNG" + b"0" * (20 * 1000 * 1000), "image/png")},
                        timeout=60)
    assert big.status_code == 413 and "The upload is 20.0 MB" in big.text
    bad = requests.post(url, files={"image": ("x.png", b"garbage", "image/png")}, timeout=30)
    assert bad.status_code == 400 and "is not a picture this page can read" in bad.text
    assert requests.get(page(cluster, "/search?q=a+photo+of+a+bag"), timeout=30).status_code == 200


def test_an_empty_query_and_bad_fields_are_400_with_a_message(cluster: Cluster) -> None:
    empty = requests.get(page(cluster, "/search?q=&tags="), timeout=30)
    assert empty.status_code == 400 and "Type a description, upload a picture or draw a sketch" in empty.text
    for query, message in [("q=x&k=100000", "The number of results must be between"),
                           ("q=x&method=nonsense", "Unknown method"),
                           ("q=" + "a" * 600, "at most 500")]:
        answer = requests.get(page(cluster, f"/search?{query}"), timeout=30)
        assert answer.status_code == 400 and message in answer.text, query
    assert requests.get(page(cluster, "/models/no-such-model"), timeout=30).status_code == 404
    assert requests.get(page(cluster, "/no/such/page"), timeout=30).status_code == 404
    assert requests.get(page(cluster, "/models/" + "x" * 5_000), timeout=30).status_code == 400


def test_model_metadata_with_html_renders_as_text_and_features_only_models_show_a_placeholder(
        cluster: Cluster, browser) -> None:
    from urllib.parse import quote

    browser.get(page(cluster, "/models/" + quote(FEATURES_ONLY_ID)))
    description = css(browser, "#description")[0].text
    assert description.startswith("<script>window.hacked = 1</script><b id=\"injected\">bold</b>")
    assert browser.execute_script("return window.hacked === undefined && !document.getElementById('injected')")
    assert css(browser, "#model-name")[0].text == "Features only <i>model</i>"
    browser.get(page(cluster, "/search?q=a+photo+of+a+bag&tags=bag"))
    cards = {c.find_element("css selector", ".id").text: c for c in css(browser, "#cards > li")}
    assert "added from its features" in cards[FEATURES_ONLY_ID].text
    assert cards["fashion-vae-bag"].find_elements("css selector", "img.thumb")


def test_thumbnails_are_served_with_caching_headers(cluster: Cluster) -> None:
    url = page(cluster, "/thumbnail?model=fashion-vae-bag&v=1&i=0")
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert Image.open(io.BytesIO(answer.content)).size == (28, 28)  # the zoo's 28 px samples, not upscaled
    again = requests.get(url, headers={"If-None-Match": answer.headers["etag"]}, timeout=30)
    assert again.status_code == 304 and not again.content
    assert requests.get(page(cluster, "/thumbnail?model=fashion-vae-bag&v=1&i=8"), timeout=30).status_code == 404
    stale = requests.get(page(cluster, "/thumbnail?model=fashion-vae-bag&v=7&i=0"), timeout=30)
    assert "immutable" not in stale.headers["cache-control"]  # not the served version: short cache only


def test_filters_travel_in_the_shareable_url(cluster: Cluster) -> None:
    answer = requests.get(page(cluster, "/search?q=a+photo+of+a+sneaker&family=vae&min_res=20&max_res=64"),
                          timeout=30)
    assert answer.status_code == 200
    assert 'id="share-link" href="/search?q=a+photo+of+a+sneaker&amp;family=vae&amp;min_res=20&amp;max_res=64"' in answer.text
    assert answer.text.count('class="card"') >= 1 and "fashion-dcgan-sneaker" not in answer.text  # a gan
    posted = requests.post(page(cluster, "/search"), data={"q": "a photo of a bag", "tags": "bag"},
                           allow_redirects=False, timeout=30)
    assert posted.status_code == 303 and posted.headers["location"] == "/search?q=a+photo+of+a+bag&tags=bag"


def test_result_cards_show_each_hits_confidence(cluster: Cluster) -> None:
    text = requests.get(page(cluster, "/search?q=a+photo+of+a+bag"), timeout=30).text
    assert 'class="confidence"' in text and "%</data>" in text
