"""`glassformer serve`: the report page from a local server; new inputs run through the real model."""

import json
import re
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import torch

from glassformer.cli import main
from glassformer.config import get_preset
from glassformer.inspect.report import build_report
from glassformer.inspect.serve import ReportPages, report_server
from glassformer.inspect.subject import from_run
from glassformer.models import build_model
from glassformer.run_folder import save_run
from glassformer.text import WordTokenizer

TEXT = "when you play the game of thrones"


def _data(html):
    return json.loads(re.search(r'<script id="gf-data" type="application/json">(.*?)</script>', html, re.S).group(1))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tokenizer = WordTokenizer.train([TEXT, "you win or you die"])
    config = get_preset("tiny-seq2seq").replace(vocab_size=tokenizer.vocab_size, max_len=16)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("serve") / "run"
    save_run(folder, build_model(config).eval(), config, "seq2seq", tokenizer)
    subject = from_run(str(folder))
    server = report_server(ReportPages(subject, TEXT, max_steps=4), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield subject, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _get(url):
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, response.read().decode("utf-8")


def test_the_server_answers_each_text_with_its_own_page(served):
    subject, url = served
    status, html = _get(url)
    assert status == 200 and _data(html)["serve"] == {"text": TEXT, "error": None}
    status, html = _get(url + "?text=" + quote("you win or you die"))
    data = _data(html)
    assert data["serve"] == {"text": "you win or you die", "error": None}
    assert data["inputs"][0]["tokens"] == ["you", "win", "or", "you", "die", "<end>"]
    expected = build_report(subject, "you win or you die", max_steps=4)
    assert data["decoding"] == expected["decoding"] and data["attention"] == expected["attention"]


def test_bad_input_gets_a_message_in_the_page_never_a_traceback(served):
    _, url = served
    for text, message in [(" ".join(["you"] * 20), "past the model's maximum of 16"),
                          ("   ", "Type some text"), ("x" * 2001, "at most 2000")]:
        status, html = _get(url + "?text=" + quote(text))
        data = _data(html)
        assert status == 200 and message in data["serve"]["error"], data["serve"]
        assert data["text"] == TEXT  # the page shows the last good input under the message
        assert "Traceback" not in html
    with pytest.raises(urllib.error.HTTPError) as error:
        _get(url + "etc/passwd")
    assert error.value.code == 404


def test_concurrent_requests_each_get_their_own_text(served):
    _, url = served
    texts = ["you win", "you die", "play the game", "when you win", "the game of thrones", "or you die"]
    with ThreadPoolExecutor(len(texts)) as pool:
        pages = list(pool.map(lambda t: _get(url + "?text=" + quote(t)), texts))
    assert [_data(html)["serve"]["text"] for _, html in pages] == texts
    assert [_data(html)["text"] for _, html in pages] == texts


def test_serve_command_refuses_a_port_in_use(served, capsys):
    port = served[1].rsplit(":", 1)[1].strip("/")
    assert main(["serve", "--model", str(served[0].name), "--port", port]) == 2
    assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err
