"""`glassformer serve`: the report page from a local server, with a text box that runs the model."""

from __future__ import annotations

import argparse

from glassformer.cli.see import _model_flags


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the report page locally: type a text, see it go through the model",
        description="Serve `glassformer report`'s page from this machine (127.0.0.1 by default) with a "
        "text box: each new input runs through the real model, nothing is written to disk.",
    )
    _model_flags(p)
    p.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--text", help="the input shown first (default: article C's sentence)")
    p.add_argument("--max-steps", type=int, default=20, help="the most tokens to decode (default 20)")
    p.add_argument("--top-k", type=int, default=5, help="candidates kept per step (default 5)")
    p.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    from glassformer.inspect.serve import ReportPages, report_server
    from glassformer.inspect.subject import DEFAULT_TEXT, load_subject

    text = args.text or DEFAULT_TEXT
    subject = load_subject(args.preset, args.model, text, args.seed)
    pages = ReportPages(subject, text, max_steps=args.max_steps, top_k=args.top_k)
    server = report_server(pages, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"serving {subject.name} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
