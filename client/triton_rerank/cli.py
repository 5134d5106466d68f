"""triton-rerank: export models, serve them with Triton, ingest documents into Milvus, search and
rerank, and measure quality and speed.

    triton-rerank quickstart                 # export, serve, ingest a sample, search: the whole path
    triton-rerank export --model cross-encoder/ms-marco-MiniLM-L-6-v2
    triton-rerank serve
    triton-rerank api --port 8080            # Cohere / Jina / TEI rerank HTTP routes in front of Triton
    triton-rerank ingest path/to/corpus.jsonl --milvus-uri documents.db
    triton-rerank search "how do vaccines work?" --milvus-uri documents.db
    triton-rerank evaluate --data path/to/beir-folder
    triton-rerank train --data path/to/beir-folder --model M --output my-reranker --max-minutes 15
    triton-rerank distill --data path/to/beir-folder --model M --output my-cascade  # as good, cheaper
    triton-rerank deploy --model my-reranker           # a new version into the running server
    triton-rerank benchmark --quick                    # from a checkout: scripts/benchmark.py

Generated models go to generated/model_repository unless --repository says otherwise. Commands that
talk to a running Triton take --triton-url (default $TRITON_RERANK_URL or grpc://127.0.0.1:8001).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading

from triton_rerank.errors import RerankError, RerankInputError

log = logging.getLogger(__name__)

# Subcommand -> the module that declares its flags (add_arguments) and runs it (run). The modules
# import what they need (torch, the server, pymilvus) only when they run.
COMMANDS = {
    "quickstart": "triton_rerank.commands.quickstart",
    "export": "triton_rerank.commands.export",
    "serve": "triton_rerank.commands.serve",
    "api": "triton_rerank.commands.api",
    "ingest": "triton_rerank.commands.ingest",
    "search": "triton_rerank.commands.search",
    "evaluate": "triton_rerank.commands.evaluate",
    "train": "triton_rerank.commands.train",
    "distill": "triton_rerank.commands.distill",
    "deploy": "triton_rerank.commands.deploy",
    "benchmark": "triton_rerank.commands.benchmark",
}
# A command's exit status: 0 done, 1 a service or the machine failed it, 2 the user's input was wrong.
FAILED, BAD_INPUT = 1, 2


class _QuietNoise(logging.Filter):
    """ONNX Runtime's quantizer advises, on the root logger, the pre-processing that static
    quantization needs; the export quantizes dynamically, so the line would only mislead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing before quantization")


def configure_logging() -> None:
    """The command line's logging (the library configures none): warnings and errors once."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().addFilter(_QuietNoise())
    try:
        import pymilvus  # noqa: F401  (it configures its own loggers when imported: do it first)
    except ImportError:
        pass
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # its errors reach the user as ours
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triton-rerank", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        passes_on = getattr(module, "PASSES_ON_ARGUMENTS", False)  # a door to another program's flags
        sub = commands.add_parser(
            name,
            help=module.__doc__.splitlines()[0],
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=not passes_on,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run, passes_on=passes_on)
    return parser


def run_command(run, args: argparse.Namespace) -> int:
    """The one error boundary of every command: what the user got wrong (``RerankInputError``: a
    bad flag, file, collection or document) is one line and exit status 2; a server, the machine or
    a missing extra that failed it (``RerankError``, ``OSError``, ``ImportError``) one line and 1;
    Ctrl-C 130. Anything else is a bug of ours: raised as it is, with its traceback."""
    try:
        return run(args)
    except RerankInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT
    except (RerankError, OSError, ImportError) as err:
        log.debug("the command failed", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def _exit(signum, frame) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not args.passes_on:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    return execute(args.run, args)


def execute(run, args: argparse.Namespace) -> int:
    """Run a parsed command as the command line does: logging configured once, SIGTERM unwinding
    like Ctrl-C, and the one error boundary (``run_command``)."""
    configure_logging()
    # SIGTERM (kill, timeout, a container stop) unwinds like Ctrl-C, so the servers a command
    # started (Triton, the API) are stopped by their context managers instead of left orphaned.
    main_thread = threading.current_thread() is threading.main_thread()  # signals are the main thread's
    previous = signal.signal(signal.SIGTERM, _exit) if main_thread else None
    try:
        return run_command(run, args)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
