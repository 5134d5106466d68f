"""``deploy`` interrupted (SIGKILL at several points) while clients rerank, and Triton restarted after
it: one version serves throughout, the old one or the new one, never a mix; a failed request is never
the outcome; ``--rollback`` and a second deploy still work (issue 39)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.integration.test_live_deploy import DOCUMENTS, Clients, models  # noqa: F401 - models: a fixture
from triton_rerank import TritonRerankFunction
from triton_rerank.serving.deploy import history
from triton_rerank.serving.export import export_cross_encoder
from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

pytestmark = pytest.mark.integration


def deploy_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "triton_rerank.cli", "deploy", *arguments]


# 3 s: while it exports the new version; None: once its members are in the repository (while Triton
# loads them, or while it switches the ensemble), 0.5 s after they appear.
@pytest.mark.parametrize("killed_after_s", [3.0, None], ids=["exporting", "loading or switching"])
def test_a_deploy_killed_midway_leaves_one_version_serving_and_rollback_working(
    models,  # noqa: F811 - the fixture imported above
    tmp_path,
    killed_after_s,
):
    paths, scores = models
    repository = tmp_path / "model_repository"
    export_cross_encoder(str(paths["a"]), repository)
    settings = free_port_settings(model_control="explicit")
    with EmbeddedTritonServer(repository, settings) as server, Clients(server, scores) as clients:
        where = ("--repository", str(repository), "--triton-url", server.grpc_url)
        run = subprocess.Popen(deploy_command("--model", str(paths["b"]), *where), stderr=subprocess.PIPE, text=True)
        if killed_after_s is None:
            deadline = time.monotonic() + 120
            while not (repository / "reranker_v2").exists() and not (repository / "tokenizer_v2").exists():
                assert time.monotonic() < deadline and run.poll() is None, "the deploy wrote no member"
                time.sleep(0.05)
            time.sleep(0.5)
        else:
            time.sleep(killed_after_s)
        finished = run.poll() is not None
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        time.sleep(0.5)
        serving = history(repository)["serving"]
        again = subprocess.run(deploy_command("--model", str(paths["b"]), *where), capture_output=True, text=True)
        assert again.returncode == 0, again.stderr[-2000:]
        back = subprocess.run(deploy_command("--rollback", *where), capture_output=True, text=True)
        assert back.returncode == 0, back.stderr[-2000:]
        time.sleep(0.5)
    assert clients.failures == []
    assert "neither" not in {name for _, name in clients.seen}  # never a mix of two versions' members
    print(f"\ndeploy killed after {killed_after_s} s (finished: {finished}); serving v{serving} then")
    with EmbeddedTritonServer(repository, free_port_settings()) as restarted:  # a restart serves the rollback
        with TritonRerankFunction(restarted.grpc_url) as rerank:
            np.testing.assert_allclose(rerank.score("paris", DOCUMENTS), scores["a"], atol=1e-4)
