"""`captioner demo [--model DIR ...]`: load and check the models, then start the web demo.

Every model named is loaded before the server starts: one that cannot be loaded is an error
(exit status 2), not a page that fails later.
"""

from __future__ import annotations

import argparse
import errno
import logging
import re
import sys

from captioner import commandline
from captioner.cli import options
from captioner.demo.env import DEFAULT_HOST


def build_parser(command: str = "demo") -> argparse.ArgumentParser:
    p = commandline.parser(
        "captioner demo",
        "Start the Gradio web demo (served on 127.0.0.1 unless --host says otherwise).",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="MODEL",
        help="a model directory or hub id to offer besides the default; repeatable (default: none)",
    )
    p.add_argument(
        "--no-default",
        action="store_true",
        help="do not load the bundled default model (default: off)",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on; 0.0.0.0 exposes the demo to your network "
        f"(default: {DEFAULT_HOST})",
    )
    p.add_argument(
        "--port",
        type=port_number,
        default=None,
        help="port (default: the first free one from 7860)",
    )
    p.add_argument(
        "--share",
        action="store_true",
        help="also open a public *.gradio.live link; needs internet, and anyone with the "
        "link can use it (default: off)",
    )
    p.add_argument(
        "--max-file-size",
        type=file_size,
        default="20mb",
        help="upload size limit: a number of bytes or with kb, mb, gb (default: 20mb)",
    )
    p.add_argument(
        "--concurrency",
        type=options.positive,
        default=1,
        help="model calls run at once; other users wait in the queue (default: 1)",
    )
    p.add_argument(
        "--max-queue", type=options.positive, default=32, help="most requests waiting (default: 32)"
    )
    p.add_argument(
        "--max-batch",
        type=options.positive,
        default=200,
        help="most images in one batch (default: 200)",
    )
    options.add_device(p)
    return p


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1..65535."""
    value = options.positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, got {value}")
    return value


def file_size(text: str) -> str:
    """argparse type: an upload limit as Gradio reads it (`20mb`, `1.5 gb`, `500000`)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(b|kb|mb|gb|tb)?\s*", text, re.IGNORECASE)
    if not found or float(found.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 20mb, 500kb or 1gb, got {text!r}"
        )
    return text.strip().lower()


def check_address(host: str, port: int | None) -> None:
    """A `CaptionerError` (one line) when the server could not listen on `host` (`port`):
    checked before any model loads, so a typo or a taken port never starts a server that
    hangs or fails later."""
    import socket

    from captioner.errors import CaptionerError

    try:
        infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise CaptionerError(f"--host {host}: not an address of this machine ({e})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind(address)
        except OSError as e:
            where = f"{host}:{port}" if port else host
            why = "the port is in use" if e.errno == errno.EADDRINUSE else e.strerror or e
            raise CaptionerError(f"cannot listen on {where}: {why}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commandline.configure_logging(args, chatty=("captioner.demo",))
    check_address(args.host, args.port)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's pings of its own URL
    from captioner.demo.env import prepare_environment

    prepare_environment()  # before gradio is imported: it reads its settings at import
    from captioner.demo.app import serve

    serve(args)
    return 0


if __name__ == "__main__":
    from captioner.cli.main import run_command

    sys.exit(run_command("demo", sys.argv[1:]))
