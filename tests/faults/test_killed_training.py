"""``train`` killed (SIGKILL) mid-run: no output folder that ``export`` would take as a model is left,
and a second run starts cleanly and writes one (issue 39). ``distill`` writes its output the same way
(``distill.runner``: a staging folder renamed into place once the whole of it is written)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration


def train_command(beir_folder, model, output, steps: int) -> list[str]:
    return [sys.executable, "-m", "triton_rerank.cli", "train", "--data", str(beir_folder), "--model", str(model),
            "--output", str(output), "--max-minutes", "5", "--max-steps", str(steps), "--evaluations", "2",
            "--dev-fraction", "0.25", "--dev-depth", "10", "--max-length", "48", "--force"]  # fmt: skip


def test_train_killed_midway_leaves_no_model_and_runs_again_cleanly(beir_folder, tiny_model, tmp_path):
    output = tmp_path / "trained"
    run = subprocess.Popen(train_command(beir_folder, tiny_model, output, 100_000), stdout=subprocess.PIPE, text=True)
    time.sleep(20)  # into its steps: the corpus searched, the tiny model training
    assert run.poll() is None, "train finished before it could be killed"
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=10)
    assert not output.exists()
    export = [
        sys.executable,
        "-m",
        "triton_rerank.cli",
        "export",
        "--model",
        str(output),
        "--repository",
        str(tmp_path / "r"),
    ]
    refused = subprocess.run(export, capture_output=True, text=True)
    assert refused.returncode != 0 and not (tmp_path / "r" / "cross_encoder").exists()
    again = subprocess.run(train_command(beir_folder, tiny_model, output, 10), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (output / "train-report.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the killed run's staging is gone
