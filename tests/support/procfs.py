"""What a process holds open, from /proc (Linux): for the fault tests' and bench/faults.py's leak checks."""

from __future__ import annotations

import os
from pathlib import Path


def open_descriptors(pid: int) -> dict[str, str]:
    """The process's open descriptors and what each is: a path, ``pipe:[...]``, ``anon_inode:...``, or a TCP
    socket as ``tcp:<remote port>`` (looked up by inode in /proc/<pid>/net/tcp and tcp6; a listening socket
    is ``tcp:0``). Empty when the process is gone."""
    remote = {}
    try:
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                remote[fields[9]] = int(fields[2].rsplit(":", 1)[1], 16)
        names = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError):
        return {}
    out = {}
    for fd in names:
        try:
            what = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        inode = what.removeprefix("socket:[").rstrip("]")
        out[fd] = f"tcp:{remote[inode]}" if what.startswith("socket:") and inode in remote else what
    return out
