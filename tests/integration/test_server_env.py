"""The embedded server's env setting refuses PYTHONPATH, because Triton's Python backend stub
ignores it: model code imports only from the serving interpreter's own site-packages. The second
test checks that premise on the real server, so the refusal goes if a Triton release changes it."""

from __future__ import annotations

import pytest

from triton_rerank.serving.server import EmbeddedTritonServer, ServerSettings, ServerStartError, free_port_settings

pytestmark = pytest.mark.integration

PROBE = """
import sys

EXTRA = "{extra}"


class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError(f"PROBE sees PYTHONPATH: {EXTRA in sys.path}")
"""

CONFIG = """backend: "python"
max_batch_size: 0
input [{ name: "X", data_type: TYPE_FP32, dims: [1] }]
output [{ name: "Y", data_type: TYPE_FP32, dims: [1] }]
"""


def test_settings_refuse_pythonpath_with_where_to_install_instead():
    with pytest.raises(ValueError, match="ignores it.*site-packages"):
        ServerSettings(env={"PYTHONPATH": "/opt/extra"})


def test_python_models_do_not_see_the_servers_pythonpath(tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    extra.mkdir()
    (tmp_path / "models" / "probe" / "1").mkdir(parents=True)
    (tmp_path / "models" / "probe" / "config.pbtxt").write_text(CONFIG)
    (tmp_path / "models" / "probe" / "1" / "model.py").write_text(PROBE.replace("{extra}", str(extra)))
    monkeypatch.setenv("PYTHONPATH", str(extra))  # inherited by the server, as a user's shell would pass it
    with pytest.raises(ServerStartError) as caught:
        EmbeddedTritonServer(tmp_path / "models", free_port_settings()).start()
    assert "PROBE sees PYTHONPATH: False" in str(caught.value)


def test_a_server_pinned_to_some_cores_runs_its_python_models_there_too(tiny_repository):
    import os
    import subprocess

    with pytest.raises(ValueError, match="cpus must be some of this process's cores"):
        ServerSettings(cpus=frozenset({max(os.sched_getaffinity(0)) + 1}))
    with pytest.raises(ValueError, match="cpus must be some"):
        ServerSettings(cpus=frozenset())
    core = min(os.sched_getaffinity(0))
    with EmbeddedTritonServer(tiny_repository, free_port_settings(cpus=frozenset({core}))) as server:
        pid = server._process.pid
        stubs = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        assert stubs  # the Python backend's stubs: tokenizer, aggregator, runner
        assert all(os.sched_getaffinity(int(p)) == {core} for p in [pid, *stubs])
