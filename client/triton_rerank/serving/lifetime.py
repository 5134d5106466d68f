"""A server never outlives the process that owns it. The embedded Triton runs in a session of its own
(so that a terminal's Ctrl-C reaches only the command, which stops it in order), and so a SIGKILL of
the command (the OOM killer, a supervisor) used to leave it running, holding its ports (issue 39).
Linux's parent-death signal closes that hole: the kernel sends Triton SIGTERM when its parent dies,
however it dies, and Triton then stops as it does on any SIGTERM."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def child_setup(parent: int, cpus: set[int] | None = None):
    """The ``preexec_fn`` of a server's ``Popen``, run in the child between fork and exec: its cores,
    and SIGTERM when ``parent`` (the pid that starts it) dies. Linux sends it when the *thread* that
    forked exits, so start servers from a thread that lives as long as they do (the main thread)."""

    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
            if os.getppid() != parent:  # the parent died before the prctl: nobody would ever signal
                os.kill(os.getpid(), signal.SIGTERM)

    return setup
