"""Take the README's screenshots of the report page: a trained toy translation model and an
imported GPT-2-shaped model, opened in Debian's chromium through Selenium (nothing downloaded).

    python3 scripts/screenshots.py                   # trains the toy model (a few minutes on a CPU)
    python3 scripts/screenshots.py --translation RUN --gpt2 HF_FOLDER --out docs

Writes docs/report-translation.png, docs/report-translation-decoding.png and docs/report-gpt2.png.
Needs the test extra (selenium) and apt's chromium + chromium-driver (scripts/install.sh --test).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRANSLATION_TEXT = "the small dog sees a red bird"
GPT2_TEXT = "the cat sees a bird"
LIMIT = 300_000  # bytes per PNG


def _run(*command: str) -> None:
    print("$", " ".join(command), flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run(command, check=True, cwd=ROOT, env=env)


def _browser(profile: Path, width: int, height: int):
    from selenium import webdriver

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={width},{height}",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))


def _open(driver, page: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")


def _shot(element, path: Path) -> None:
    element.screenshot(str(path))
    size = path.stat().st_size
    print(f"wrote {path} ({size:,} bytes)")
    if size > LIMIT:
        print(f"warning: {path} is over {LIMIT:,} bytes", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--translation", help="a trained toy-translation run folder (default: train one)")
    parser.add_argument("--gpt2", help="a tiny GPT-2 Hugging Face folder (default: scripts/tiny_hf_model.py gpt2)")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the toy model (default 300)")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where the PNGs go (default docs/)")
    args = parser.parse_args()

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from glassformer.inspect.report import write_report
    from glassformer.inspect.subject import from_run

    work = Path(tempfile.mkdtemp(prefix="glassformer-shots-"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    translation = args.translation or str(work / "toy")
    if not args.translation:
        _run(sys.executable, "-m", "glassformer", "train", "--task", "toy-translation", "--preset", "tiny-seq2seq",
             "--steps", str(args.steps), "--batch-size", "32", "--lr", "0.003", "--warmup", "40",
             "--eval-every", "100000", "--eval-examples", "100", "--seed", "0", "--no-progress", "--out", translation)
    gpt2 = args.gpt2 or str(work / "gpt2")
    if not args.gpt2:
        _run(sys.executable, "scripts/tiny_hf_model.py", "gpt2", gpt2)

    pages = {
        "translation": write_report(from_run(translation), TRANSLATION_TEXT, work / "translation.html", max_steps=12),
        "gpt2": write_report(from_run(gpt2), GPT2_TEXT, work / "gpt2.html", max_steps=6),
    }
    driver = _browser(work / "profile", 1180, 1800)
    try:
        # The toy translation: the decoder's cross-attention, head 1, its neuron view.
        _open(driver, pages["translation"])
        driver.find_element(By.CSS_SELECTOR, '#column-decoder .gbox[data-box$="cross_attn"]').click()
        Select(driver.find_element(By.ID, "head")).select_by_value("1")
        _shot(driver.find_element(By.ID, "model-section"), out / "report-translation.png")
        # Its attention overview and the decoding stepper at step 3, temperature 1.5.
        driver.find_element(By.CSS_SELECTOR, "#next").click()
        driver.find_element(By.CSS_SELECTOR, "#next").click()
        driver.find_element(By.CSS_SELECTOR, "#next").click()
        driver.execute_script("var t = document.getElementById('temperature'); t.value = '1.5';"
                              "t.dispatchEvent(new Event('input'));")
        Select(driver.find_element(By.ID, "kind")).select_by_value("cross")
        driver.execute_script("document.getElementById('model-section').style.display = 'none';"
                              "document.getElementById('input').style.display = 'none';")
        _shot(driver.find_element(By.TAG_NAME, "main"), out / "report-translation-decoding.png")
        # The imported GPT-2: its last layer's feed-forward hidden layer.
        _open(driver, pages["gpt2"])
        driver.find_element(By.CSS_SELECTOR, '#stack-decoder .layers button[data-layer="1"]').click()
        driver.find_element(By.CSS_SELECTOR, '#stack-decoder .gbox.attn').click()
        _shot(driver.find_element(By.ID, "model-section"), out / "report-gpt2.png")
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
