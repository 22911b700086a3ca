"""The HTML report: one self-contained file, checked in a real headless browser (Debian's chromium)."""

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from glassformer.cli import main
from glassformer.config import get_preset
from glassformer.inspect.report import build_report, render_report
from glassformer.inspect.subject import from_preset, from_run
from glassformer.models import build_model
from glassformer.run_folder import save_run
from glassformer.text import WordTokenizer

TEXT = "when you play the game of thrones"
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def report_path(tmp_path_factory):
    tokenizer = WordTokenizer.train([TEXT, "you win or you die"])
    config = get_preset("tiny-seq2seq").replace(vocab_size=tokenizer.vocab_size, max_len=32)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("runs")
    save_run(folder / "run", build_model(config).eval(), config, "seq2seq", tokenizer)
    out = folder / "report.html"
    assert main(["report", "--model", str(folder / "run"), TEXT, "--out", str(out), "--max-steps", "6"]) == 0
    return out


def _unpack(entry):
    """A tensor entry's stored numbers as float32 [planes, rows, cols]."""
    return np.frombuffer(base64.b64decode(entry["data"]), dtype="<f2").astype(np.float32).reshape(entry["grid"])


def _data(html):
    match = re.search(r'<script id="gf-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def test_report_is_one_self_contained_file(report_path):
    html = report_path.read_text(encoding="utf-8")
    assert "default-src 'none'" in html  # the page forbids itself every request
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(https?:|//)""", html, re.I)
    assert not re.search(r"<(link|iframe|object|embed)\b|<script[^>]+\bsrc=|@import|url\(|fetch\(|XMLHttpRequest", html, re.I)
    assert "http://" not in html and "https://" not in html
    data = _data(html)
    assert data["attention"]["kinds"] == ["self", "decoder", "cross"]
    assert [len(layer) for layer in data["attention"]["maps"]["cross"]] == [4, 4]
    assert data["decoding"] and all(len(s["top"]) == 5 for s in data["decoding"])
    assert data["decoding"][0]["prefix"] == ["<start>"]
    steps = [row["step"] for row in data["trace"]]
    assert steps[:3] == ["token ids", "embedding", "positional encoding"] and "logits" in steps


def test_report_data_matches_the_model(report_path):
    data = _data(report_path.read_text(encoding="utf-8"))
    run = from_run(str(report_path.parent / "run"))
    rebuilt = build_report(run, TEXT, max_steps=6)
    # Tensors are compared to float16's precision: a run in another process may differ in the
    # last float32 bit, which can flip a float16 rounding.
    tensors, rebuilt_tensors = data.pop("tensors"), rebuilt.pop("tensors")
    assert rebuilt == data
    assert list(tensors) == list(rebuilt_tensors)
    for name, entry in tensors.items():
        other = rebuilt_tensors[name]
        assert {k: v for k, v in entry.items() if k not in ("data", "stats")} == \
            {k: v for k, v in other.items() if k not in ("data", "stats")}
        assert entry["stats"] == pytest.approx(other["stats"], abs=2e-4)
        if entry["data"] is not None:
            np.testing.assert_allclose(_unpack(entry), _unpack(other), rtol=2e-3, atol=1e-4)
    probs = [c[1] for s in data["decoding"] for c in s["top"]]
    assert all(0 <= p <= 1 for p in probs)
    for step in data["decoding"]:
        assert [c[1] for c in step["top"]] == sorted((c[1] for c in step["top"]), reverse=True)
        assert step["chosen"] == step["top"][0][0]


def test_tokens_cannot_break_out_of_the_page():
    subject = from_preset("tiny-lm", "a </script><!-- b")
    html = render_report(build_report(subject, "a </script><!-- b", max_steps=2))
    assert html.count("</script>") == 3 and "<!-- b" not in html.split('id="gf-data"')[1]
    assert _data(html)["inputs"][0]["tokens"][:3] == ["<start>", "a", "<"]


def _chromium(args, tmp_path, timeout=60):
    """Run headless chromium with everything that could reach a network switched off."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
        "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr", "--v=0", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def _body(dom):
    tag = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag))


def read_png(path):
    """Decode an 8-bit RGB/RGBA PNG into [H, W, C] (just enough PNG for a screenshot)."""
    raw = Path(path).read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(raw):
        length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6) and body[12] == 0, "only 8-bit, non-interlaced RGB(A)"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    data = zlib.decompress(idat)
    stride = width * channels
    out = bytearray(height * stride)
    previous = bytearray(stride)
    for y in range(height):
        kind, row = data[y * (stride + 1)], bytearray(data[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(channels, stride):
                row[i] = (row[i] + row[i - channels]) & 255
        elif kind == 2:
            row = bytearray((a + b) & 255 for a, b in zip(row, previous))
        elif kind == 3:
            for i in range(stride):
                left = row[i - channels] if i >= channels else 0
                row[i] = (row[i] + ((left + previous[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = row[i - channels] if i >= channels else 0
                b, c = previous[i], previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y * stride:(y + 1) * stride] = row
        previous = row
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(height, width, channels)


@needs_chromium
def test_report_works_in_a_headless_browser(report_path, tmp_path):
    url = report_path.resolve().as_uri() + "#selftest"
    result = _chromium(["--virtual-time-budget=5000", "--dump-dom", url], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    body = _body(result.stdout)
    assert body.get("data-ready") == "true", result.stdout[:500]
    assert body["data-errors"] == "0", body.get("data-error-messages")
    assert body["data-resources"] == "0"  # no request of any kind left the page
    assert body["data-heatmap-changed"] == "true"  # switching the head redrew the heatmap
    assert body["data-temperature-changed"] == "true"  # the temperature reshaped the distribution
    data = _data(report_path.read_text(encoding="utf-8"))
    s = len(data["attention"]["axes"]["self"][1])
    assert body["data-shape"] == f"[B=1, H=4, S={s}, S={s}]"  # the first attention box's probabilities
    # Figure 1 of a pre-norm 2+2 layer model: 3 embedding boxes per side, 6 boxes per encoder
    # layer, 9 per decoder layer, the two final norms, the output projection and the softmax.
    assert body["data-boxes"] == str(3 + 6 + 1 + 3 + 9 + 1 + 2)
    assert body["data-overview-maps"] == str(2 * 4)  # encoder self-attention: 2 layers x 4 heads
    assert body["data-flow-rows"] == str(len(data["trace"]))
    assert body["data-selftest"] == "pass"
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if re.search(r"Uncaught|Refused|violates|Failed to load", line)], console


@needs_chromium
def test_the_browser_check_catches_errors_and_requests(report_path, tmp_path):
    """The same check on a broken copy fails, so a passing check means something."""
    broken = tmp_path / "broken.html"
    html = report_path.read_text(encoding="utf-8")
    broken.write_text(html.replace("<main>", '<main><img src="http://example.invalid/x.png"><script>noSuchFunction();</script>', 1), encoding="utf-8")
    result = _chromium(["--virtual-time-budget=5000", "--dump-dom", broken.resolve().as_uri() + "#selftest"], tmp_path)
    body = _body(result.stdout)
    assert body["data-errors"] == "2" and body["data-selftest"] == "fail"
    assert "noSuchFunction" in body["data-error-messages"] and "blocked request" in body["data-error-messages"]


@needs_chromium
def test_report_screenshot_is_not_blank(report_path, tmp_path):
    shot = tmp_path / "shot.png"
    result = _chromium(["--window-size=480,900", "--hide-scrollbars", f"--screenshot={shot}", report_path.resolve().as_uri()], tmp_path)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = read_png(shot)[:, :, :3].reshape(-1, 3)
    assert pixels.shape[0] == 480 * 900
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    assert len(colours) > 50  # text, header, heatmap shades
    assert counts.max() / pixels.shape[0] < 0.8  # no single colour fills the page
    dark = (pixels.sum(1) < 150).mean()  # the header band and the text
    assert 0.02 < dark < 0.6
