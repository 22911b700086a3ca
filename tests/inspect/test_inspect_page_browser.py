"""The report page driven in a real browser: Debian's chromium through chromedriver and Selenium.

Nothing is downloaded: the driver and the browser are the system's (/usr/bin/chromedriver,
/usr/bin/chromium; `scripts/install.sh --test` installs them), and the tests skip without them.
Every request the browser makes is read from its performance log: only the page itself (or the
local server) may be asked for anything.
"""

import json
import os
import shutil
import threading
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch

from glassformer.config import get_preset
from glassformer.framing import Framing
from glassformer.inspect.report import build_report, render_report
from glassformer.inspect.serve import ReportPages, report_server
from glassformer.inspect.subject import Subject, from_run
from glassformer.models import build_model
from glassformer.run_folder import save_run
from glassformer.text import WordTokenizer

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
TEXT = "when you play the game of thrones"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1300,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def _open(driver, url):
    driver.get_log("performance"), driver.get_log("browser")  # forget earlier pages' entries
    driver.get(url)
    WebDriverWait(driver, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")


def _requests(driver):
    """Every URL the browser asked for since the last _open."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _assert_clean(driver, allowed):
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not errors, errors
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-errors") == "0"
    # chrome://, data: and about: are the browser's own resources, not requests to anywhere.
    fetched = [u for u in _requests(driver) if urlsplit(u).scheme not in ("chrome", "data", "about", "devtools")]
    outside = [u for u in fetched if not any(u.startswith(a) for a in allowed)]
    assert not outside, outside


def _sig(driver, element_id="tensor-heatmap"):
    return driver.find_element(By.ID, element_id).get_attribute("data-sig")


def _probability(logits, temperature):
    z = np.array([c[1] for c in logits], dtype=np.float64) / temperature
    p = np.exp(z - z.max())
    return p / p.sum()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    tokenizer = WordTokenizer.train([TEXT, "you win or you die"])
    config = get_preset("tiny-seq2seq").replace(vocab_size=tokenizer.vocab_size, max_len=24)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("browser") / "run"
    save_run(folder, build_model(config).eval(), config, "seq2seq", tokenizer)
    return folder


def test_click_a_box_switch_layer_and_head_and_move_the_temperature(browser, run_folder, tmp_path):
    data = build_report(from_run(str(run_folder)), TEXT, max_steps=5)
    page = tmp_path / "report.html"
    page.write_text(render_report(data), encoding="utf-8")
    _open(browser, page.as_uri())
    S = len(data["inputs"][0]["tokens"])
    browser.find_element(By.CSS_SELECTOR, '#column-encoder .gbox.attn').click()
    assert browser.find_element(By.ID, "tensor-shape").text == f"[B=1, H=4, S={S}, S={S}]"
    browser.find_element(By.CSS_SELECTOR, '#tensor-tabs button[data-tensor="self_attn.hook_q"]').click()
    assert browser.find_element(By.ID, "tensor-shape").text == f"[B=1, S={S}, A=64]"
    browser.find_element(By.CSS_SELECTOR, '#tensor-tabs button[data-tensor="self_attn.hook_probs"]').click()
    # Hovering a cell reads out the number stored for it.
    heat = browser.find_element(By.ID, "tensor-heatmap")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", heat)
    # The first cell sits right of the 84-pixel row labels and below the 64-pixel column labels.
    webdriver.ActionChains(browser).move_to_element_with_offset(
        heat, 84 + 3 - heat.size["width"] // 2, 64 + 3 - heat.size["height"] // 2).perform()
    stored = data["attention"]["maps"]["self"][0][0][0][0]
    readout = browser.find_element(By.ID, "readout").text
    assert readout.startswith(f"{data['inputs'][0]['tokens'][0]} (0) · ") and float(readout.rsplit(": ", 1)[1]) == \
        pytest.approx(stored, abs=1e-3), readout
    head0 = _sig(browser)
    Select(browser.find_element(By.ID, "head")).select_by_value("1")
    head1 = _sig(browser)
    browser.find_element(By.CSS_SELECTOR, '#stack-encoder .layers button[data-layer="1"]').click()
    layer1 = _sig(browser)
    assert len({head0, head1, layer1}) == 3  # each switch redrew the heatmap with other numbers
    assert "encoder layer 1" in browser.find_element(By.ID, "detail-title").text
    # The decoding stepper: the first candidate's probability follows the temperature slider.
    first = data["decoding"][0]
    shown = lambda: float(browser.find_element(By.CSS_SELECTOR, "#candidates .cand").get_attribute("data-p"))  # noqa: E731
    assert shown() == pytest.approx(_probability(first["logits"], 1.0)[0], abs=1e-5)
    slider = browser.find_element(By.ID, "temperature")
    slider.send_keys(*[Keys.ARROW_RIGHT] * 10)  # 1.00 -> 1.50
    assert browser.find_element(By.ID, "temperature-value").text == "1.50"
    assert shown() == pytest.approx(_probability(first["logits"], 1.5)[0], abs=1e-5)
    assert shown() != pytest.approx(_probability(first["logits"], 1.0)[0], abs=1e-5)
    assert int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready-ms")) < 2000
    _assert_clean(browser, [page.as_uri()])


def test_a_six_layer_384_wide_model_page_is_small_and_quick(browser, tmp_path):
    text = " ".join(f"w{i}" for i in range(19))  # 19 words and <start>: 20 tokens
    tokenizer = WordTokenizer.train([text])
    config = get_preset("tiny-lm").replace(d_model=384, n_heads=6, d_ff=1536, n_layers=6, vocab_size=2000)
    torch.manual_seed(0)
    subject = Subject("6x384", build_model(config).eval(), config, tokenizer, tokenizer, Framing())
    page = tmp_path / "big.html"
    page.write_text(render_report(build_report(subject, text, max_steps=1)), encoding="utf-8")
    assert page.stat().st_size < 5_000_000  # measured 1.8 MB
    _open(browser, page.as_uri())
    body = browser.find_element(By.TAG_NAME, "body")
    assert int(body.get_attribute("data-ready-ms")) < 2000  # measured ~200 ms on an idle machine
    browser.find_element(By.CSS_SELECTOR, '#stack-decoder .layers button[data-layer="5"]').click()
    browser.find_element(By.CSS_SELECTOR, '#stack-decoder .gbox.ffn').click()
    browser.find_element(By.CSS_SELECTOR, '#tensor-tabs button[data-tensor="ffn.hook_hidden"]').click()
    assert browser.find_element(By.ID, "tensor-shape").text == "[B=1, T=20, d_ff=1536]"
    assert "shown: first 512 of 1536 d_ff features" in browser.find_element(By.ID, "tensor-note").text
    assert browser.find_element(By.ID, "tensor-heatmap").get_attribute("data-cols") == "512"
    _assert_clean(browser, [page.as_uri()])


def test_type_a_sentence_into_the_served_page(browser, run_folder):
    server = report_server(ReportPages(from_run(str(run_folder)), TEXT, max_steps=3), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        _open(browser, url)
        embedding = '#column-encoder .gbox[data-box="src_embed.hook_tokens"] .dims'
        assert browser.find_element(By.CSS_SELECTOR, embedding).text == "[B=1, S=8, d_model=64]"
        box = browser.find_element(By.ID, "text-input")
        box.clear()
        box.send_keys("you win or you die", Keys.ENTER)
        WebDriverWait(browser, 30).until(lambda d: "you win" in d.find_element(By.ID, "input-body").text)
        assert browser.find_element(By.CSS_SELECTOR, embedding).text == "[B=1, S=6, d_model=64]"
        assert not browser.find_elements(By.ID, "error")
        box = browser.find_element(By.ID, "text-input")
        box.clear()
        box.send_keys(" ".join(["you"] * 30), Keys.ENTER)
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "error"))
        assert "past the model's maximum of 24" in browser.find_element(By.ID, "error").text
        assert "Traceback" not in browser.page_source
        _assert_clean(browser, [url])
    finally:
        server.shutdown()
        server.server_close()
