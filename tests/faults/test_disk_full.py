"""A full disk (a small tmpfs) under ``export`` and ``train``: a clear error, and the previous state is
left intact: the repository still serves its previous models, no output folder is left (issue 39).

Mounting a tmpfs needs root (CAP_SYS_ADMIN): the build machines have it; elsewhere these tests skip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path):
    """A filesystem of 24 MiB: room for one export of the tiny cross-encoder, not for its staging copy too."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave_mb: float) -> None:
    """Take all of ``disk`` but ``leave_mb``."""
    import shutil

    free = shutil.disk_usage(disk).free - int(leave_mb * 2**20)
    if free > 0:
        (disk / "ballast").write_bytes(b"\0" * free)


def cli(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "triton_rerank.cli", *arguments], capture_output=True, text=True)


def test_export_on_a_full_disk_says_so_and_the_previous_models_still_serve(small_disk, tiny_model):
    from triton_rerank import TritonRerankFunction
    from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

    repository = small_disk / "models"
    assert cli("export", "--model", str(tiny_model), "--repository", str(repository)).returncode == 0
    fill(small_disk, leave_mb=0.02)
    failed = cli("export", "--model", str(tiny_model), "--repository", str(repository))
    assert failed.returncode != 0
    assert "No space left on device" in failed.stderr and "Traceback" not in failed.stderr, failed.stderr[-2000:]
    assert not list(small_disk.glob(".export-*"))  # its staging folder is gone
    (small_disk / "ballast").unlink()
    with EmbeddedTritonServer(repository, free_port_settings()) as server, TritonRerankFunction(server.grpc_url) as rf:
        assert len(rf.score("paris", ["paris is in france", "a fox"])) == 2


def test_train_on_a_full_disk_says_so_and_leaves_no_output(small_disk, beir_folder, tiny_model):
    output = small_disk / "trained"
    fill(small_disk, leave_mb=0.02)
    failed = cli("train", "--data", str(beir_folder), "--model", str(tiny_model), "--output", str(output),
                 "--max-minutes", "5", "--max-steps", "5", "--evaluations", "1", "--dev-fraction", "0.25",
                 "--dev-depth", "10", "--max-length", "48", "--force")  # fmt: skip
    assert failed.returncode != 0
    assert "No space left on device" in failed.stderr and "Traceback" not in failed.stderr, failed.stderr[-2000:]
    assert not output.exists() and not list(small_disk.glob(".trained*"))
