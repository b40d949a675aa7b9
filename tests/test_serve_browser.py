"""The web page of `plmkit serve`, in a real browser: Debian's chromium (never a downloaded one)
driven by Selenium through chromium-driver, headless, against the real server on loopback.

The page is loaded, an English and a Chinese sentence are submitted, and what the page shows
(the label, its bars, the highlighted entity spans) is read back from the DOM and compared with
what the server's JSON API answers for the same text. A screenshot is saved under tmp, and to
$PLMKIT_SCREENSHOT when set. `.ci/run` installs chromium, chromium-driver and fonts-noto-cjk.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from serving import build_classifier, cli, serving

from plmkit.tasks.ner.peoples_daily import write_peoples_daily_ner
from tests.test_pipeline_ner import tagged_text

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SMALL_NER = ["model.hidden_size=64", "model.num_layers=2", "model.num_heads=2",
             "model.intermediate_size=128", "model.max_position=64"]


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1000,1560", "--lang=en-US"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier trained here, or the one $PLMKIT_PAGE_MODEL names (README screenshot)."""
    given = os.environ.get("PLMKIT_PAGE_MODEL")
    return Path(given) if given else build_classifier(tmp_path_factory.mktemp("page"))["cls"]


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("page-ner")
    files = write_peoples_daily_ner(root / "data", limit=1500)
    text = tagged_text(files["train"], root / "text.txt")
    cli("tokenizer", f"inputs={text}", f"output={root / 'tok'}", "vocab_size=3000")
    cli("finetune", "task=ner", f"tokenizer={root / 'tok'}", f"train_file={files['train']}",
        f"dev_file={files['dev']}", f"output={root / 'run'}", *SMALL_NER, "max_length=64",
        "train.max_steps=800", "train.batch_size=16", "train.lr=5e-3", "train.threads=1")
    return root / "run"


def submit(driver: webdriver.Chrome, fields: dict[str, str]) -> None:
    """Type into the page's fields and press Predict; wait until the prediction shows."""
    for name, value in fields.items():
        box = WebDriverWait(driver, 30).until(lambda d, n=name: d.find_element(By.ID, f"field-{n}"))
        box.clear()
        box.send_keys(value)
    driver.execute_script("document.getElementById('result').replaceChildren()")
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#result > *")
                                    or d.find_element(By.ID, "error").text)
    assert driver.find_element(By.ID, "error").text == ""


def screenshot(driver: webdriver.Chrome, path: Path, name: str) -> None:
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    wanted = os.environ.get("PLMKIT_SCREENSHOT")
    if wanted:
        target = Path(wanted)
        shutil.copyfile(path, target.with_name(f"{target.stem}-{name}{target.suffix}")
                        if name != "classifier" else target)


def test_the_page_shows_labels_bars_and_attributions(browser, classifier, tmp_path) -> None:
    with serving(classifier) as url:
        browser.get(url + "/")
        assert browser.execute_script("return document.fonts.check('16px \"Noto Sans CJK SC\"')")
        for sentence in ("A warm, funny and moving film.", "质量很好，物流也快，非常满意！"):
            submit(browser, {"text": sentence})
            expected = httpx.post(f"{url}/predict", json={"text": sentence}).json()
            assert browser.find_element(By.ID, "label").text == expected["label"]
            rows = browser.find_elements(By.CSS_SELECTOR, "#result .bar-row")
            shown = {r.find_element(By.CLASS_NAME, "name").text: float(r.find_element(By.CLASS_NAME, "num").text)
                     for r in rows}
            assert shown.keys() == expected["probabilities"].keys()
            for label, p in expected["probabilities"].items():
                assert abs(shown[label] - p) < 6e-4, (label, shown, expected)
        browser.find_element(By.ID, "inspect-button").click()
        WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#attributions span"))
        tokens = [s.text for s in browser.find_elements(By.CSS_SELECTOR, "#attributions span")]
        inspected = httpx.post(f"{url}/inspect", json={"text": sentence}).json()
        assert tokens == inspected["tokens"]
        assert browser.find_element(By.ID, "layer").get_attribute("value") == "0"
        screenshot(browser, tmp_path / "classifier.png", "classifier")


def test_the_page_highlights_entity_spans(browser, tagger, tmp_path) -> None:
    with serving(tagger) as url:
        browser.get(url + "/")
        for sentence in ("Mao Zedong visited Shanghai.", "毛泽东同志在北京和上海工作。"):
            submit(browser, {"text": sentence})
            expected = httpx.post(f"{url}/predict", json={"text": sentence}).json()["entities"]
            shown = browser.execute_script(  # each mark: its entity text, then a small type tag
                "return Array.from(document.querySelectorAll('#result mark'))"
                ".map(m => [m.dataset.type, m.firstChild.textContent])")
            assert [tuple(m) for m in shown] == [(e["type"], e["text"]) for e in expected]
            untagged = browser.execute_script(
                "const p = document.querySelector('#result .passage').cloneNode(true);"
                "p.querySelectorAll('.tag').forEach(t => t.remove()); return p.textContent")
            assert untagged == sentence
        assert expected, "the tagger found no entity in the Chinese sentence"
        screenshot(browser, tmp_path / "ner.png", "ner")
