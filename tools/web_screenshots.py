"""Screenshots of a running web page for the docs: the results of a text search and a model page.

    .venv/bin/modelverse cluster up --store .modelverse/demo-store --encoder bundled --generators zoo
    .venv/bin/python tools/web_screenshots.py --url http://127.0.0.1:8080 --out docs

Drives Debian's headless Chromium (chromium + chromium-driver) with Selenium, as the tests do.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ALL_IMAGES_LOADED = ("return [...document.images].filter(i => i.getAttribute('src'))"
                     ".every(i => i.complete && i.naturalWidth > 0)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the web page's address")
    parser.add_argument("--out", default="docs", help="folder for web-search.png and web-model.png")
    parser.add_argument("--text", default="a photo of a sneaker")
    parser.add_argument("--model", default="fashion-vae-sneaker")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    profile = tempfile.mkdtemp(prefix="modelverse-shots-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in [*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1500"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    out = Path(args.out)
    base = args.url.rstrip("/")
    try:
        driver.get(f"{base}/")
        driver.find_element(By.ID, "q").send_keys(args.text)
        driver.find_element(By.ID, "search-button").click()
        driver.find_element(By.ID, "results-heading")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(ALL_IMAGES_LOADED))
        driver.save_screenshot(str(out / "web-search.png"))
        driver.get(f"{base}/models/{args.model}?seed={args.seed}")
        driver.find_element(By.ID, "samples")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(ALL_IMAGES_LOADED))
        driver.save_screenshot(str(out / "web-model.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {out / 'web-search.png'} and {out / 'web-model.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
