"""``export`` killed mid-write: the repository keeps its previous models, or, killed while it swapped
them in, is refused by the server with a clear message; never a mix that Triton then loads. A second
export then starts cleanly (issue 39)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from triton_rerank import TritonRerankFunction
from triton_rerank.serving.install import MARK, InterruptedExportError
from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

pytestmark = pytest.mark.integration
QUERY, DOCUMENTS = "what is the capital of france?", ["paris is the capital of france", "a fox", "the sea"]


def export_command(model, repository) -> list[str]:
    return [sys.executable, "-m", "triton_rerank.cli", "export", "--model", str(model), "--repository", str(repository)]


def served_scores(repository) -> list[float]:
    with EmbeddedTritonServer(repository, free_port_settings()) as server:
        with TritonRerankFunction(server.grpc_url) as rerank:
            return [float(s) for s in rerank.score(QUERY, DOCUMENTS)]


@pytest.fixture
def repository(tmp_path, tiny_model):
    repository = tmp_path / "models"
    assert subprocess.run(export_command(tiny_model, repository), capture_output=True).returncode == 0
    return repository


def test_an_export_killed_while_it_works_leaves_the_previous_models_served(repository, tiny_model):
    before = served_scores(repository)
    export = subprocess.Popen(export_command(tiny_model, repository), stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # tracing, exporting and checking the graph in its staging folder
    assert export.poll() is None, "the export finished before it could be killed"
    export.send_signal(signal.SIGKILL)
    export.wait(timeout=10)
    assert not (repository / MARK).exists()
    assert served_scores(repository) == pytest.approx(before, abs=1e-6)  # the previous export, whole


def test_an_export_killed_mid_swap_is_refused_then_a_second_export_starts_cleanly(repository, tiny_model):
    # Killed for certain between two models' swaps: its first rename goes through, at the second it dies.
    kill_at_second_swap = textwrap.dedent(f"""
        import os, signal, sys
        swaps = []
        real_replace = os.replace
        def replace(source, target):
            if "{MARK}" not in str(target) and not str(target).endswith(".partial"):
                swaps.append(target)
                if len(swaps) == 2:  # the first model swapped, the second moved aside: die
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(source, target)
        os.replace = replace
        from triton_rerank.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    arguments = export_command(tiny_model, repository)[3:]
    killed = subprocess.run([sys.executable, "-c", kill_at_second_swap, *arguments], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (repository / MARK).exists()
    with pytest.raises(InterruptedExportError, match="run that export again"):
        EmbeddedTritonServer(repository, free_port_settings()).start()
    serve = [sys.executable, "-m", "triton_rerank.cli", "serve", "--repository", str(repository)]
    refused = subprocess.run(serve, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "stopped while it replaced" in refused.stderr
    again = subprocess.run(export_command(tiny_model, repository), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not (repository / MARK).exists() and not list(repository.glob(".*.replaced"))
    assert len(served_scores(repository)) == len(DOCUMENTS)


def test_the_mark_of_an_earlier_interrupted_swap_stays_until_its_models_are_exported_again(tmp_path):
    from triton_rerank.serving.install import install, interrupted

    repository, staging = tmp_path / "models", tmp_path / "staging"
    for name in ("embedder", "tokenizer"):
        (staging / name).mkdir(parents=True)
    repository.mkdir()
    (repository / MARK).write_text('{"models": ["cross_encoder", "tokenizer"]}')
    install(staging, repository, ("embedder", "tokenizer"))
    assert interrupted(repository) == ["cross_encoder"]  # not hidden by another model's export
    shutil.rmtree(staging)
