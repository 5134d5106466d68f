"""Put a reranker into a running Triton as the next version of the `reranker` ensemble, with no
failed request, or roll back to an earlier version. The server must allow it: `triton-rerank serve
--model-control explicit` (or tritonserver --model-control-mode=explicit --load-model=*).

    triton-rerank deploy --model my-reranker            # trained by `triton-rerank train`
    triton-rerank deploy --rollback                      # back to the version before
"""

from __future__ import annotations

import argparse
import os

from triton_rerank.commands.common import add_repository, add_triton_url
from triton_rerank.endpoints import TRITON_API_KEY_ENV


def add_arguments(parser: argparse.ArgumentParser) -> None:
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--model", help="the cross-encoder to deploy (a folder or hub id)")
    action.add_argument("--rollback", action="store_true", help="switch back to an earlier version")
    action.add_argument("--list", action="store_true", help="show the versions and which one serves")
    parser.add_argument("--to", type=int, help="with --rollback: the version to switch to (default: the one before)")
    add_repository(parser, "the model repository the server serves; the new version is written into it")
    add_triton_url(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from triton_rerank.serving.deploy import deploy, history, rollback

    api_key = os.environ.get(TRITON_API_KEY_ENV) or None
    if args.list:
        served = history(args.repository)
        for entry in served["versions"]:
            mark = "*" if entry["version"] == served["serving"] else " "
            print(f"{mark} v{entry['version']}  {entry['model']}  {entry['deployed_at'] or ''}")
        return 0
    if args.rollback:
        entry = rollback(args.repository, args.triton_url, to=args.to, api_key=api_key)
    else:
        entry = deploy(args.model, args.repository, args.triton_url, api_key=api_key)
    print(json.dumps({k: v for k, v in entry.items() if k != "ensemble_config"}))
    print(f"serving version {entry['version']} ({entry['model']})")
    return 0
