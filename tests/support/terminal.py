"""Run the ``sds`` command on a pseudo-terminal, as a user at a terminal would (progress bars show there)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys


def on_a_terminal(database_url: str, *args: str) -> bytes:
    """Run ``sds ARGS`` with stdin/stdout/stderr on a pseudo-terminal; everything it wrote."""
    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "SDS_DATABASE_URL": database_url}
    child = subprocess.Popen([sys.executable, "-m", "sds_registry.cli", *args], env=env, stdin=child_fd,
                             stdout=child_fd, stderr=child_fd)
    os.close(child_fd)
    out = b""
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(main_fd)
    assert child.wait(timeout=60) == 0, out
    return out
