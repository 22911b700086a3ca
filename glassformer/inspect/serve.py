"""The report page served from a local process: type a new input, and the real model runs on it.

`report_server(subject, ...)` returns a `ThreadingHTTPServer` answering
    GET /               the page for the default text, with a text box
    GET /?text=...      the page for that text
Each request gets its own thread; the model runs one input at a time (the recorder attaches its
hooks to the one shared model), and recent pages are kept so that going back is instant. A bad
input (too long, empty, a word the tokenizer cannot take) is answered with the page of the last
good input and the message above it; nothing the user types can show a stack trace.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from glassformer.errors import UserError
from glassformer.inspect.report import build_report, render_report
from glassformer.inspect.subject import Subject

MAX_CHARS = 2000
"""The longest input text accepted (the model's max_len usually stops it sooner)."""
KEPT_PAGES = 32


class ReportPages:
    """Builds the page for a text, one model run at a time, keeping the most recent pages."""

    def __init__(self, subject: Subject, default_text: str, max_steps: int = 20, top_k: int = 5):
        self.subject, self.max_steps, self.top_k = subject, max_steps, top_k
        self._lock = threading.Lock()
        self._pages: OrderedDict[str, dict] = OrderedDict()
        self.default_text = default_text
        self._data(default_text)  # a bad default fails here, before the server starts

    def _data(self, text: str) -> dict:
        with self._lock:
            if text in self._pages:
                self._pages.move_to_end(text)
                return self._pages[text]
            data = build_report(self.subject, text, self.max_steps, self.top_k)
            self._pages[text] = data
            if len(self._pages) > KEPT_PAGES:
                self._pages.popitem(last=False)
            return data

    def page(self, text: str | None) -> str:
        """The HTML for text (None: the default), or the default's with a message when text is bad."""
        text = self.default_text if text is None else text
        error = None
        if not text.strip():
            error = "Type some text to run the model on."
        elif len(text) > MAX_CHARS:
            error = f"The text is {len(text)} characters long; the page takes at most {MAX_CHARS}."
        else:
            try:
                data = self._data(text)
            except UserError as e:
                error = str(e)
            except Exception:  # the page stays up; the details go to the server's log only
                traceback.print_exc(file=sys.stderr)
                error = "The model could not run on this text (see the server's log)."
        if error is not None:
            data = self._data(self.default_text)
        return render_report({**data, "serve": {"text": text, "error": error}})


def _handler(pages: ReportPages):
    class Handler(BaseHTTPRequestHandler):
        server_version = "glassformer"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
                return
            if url.path != "/":
                self._send(404, b"not found: this server has one page, at /\n", "text/plain; charset=utf-8")
                return
            query = parse_qs(url.query, keep_blank_values=True)
            text = query["text"][-1] if "text" in query else None
            self._send(200, pages.page(text).encode("utf-8"), "text/html; charset=utf-8")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            pass  # quiet: the command prints its address once

    return Handler


def report_server(pages: ReportPages, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server for the pages, bound (port 0: any free port) but not yet serving; call serve_forever()."""
    try:
        server = ThreadingHTTPServer((host, port), _handler(pages))
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    server.daemon_threads = True
    return server
