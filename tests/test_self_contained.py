"""The repository stands alone: no tracked file names a path outside it (a sibling folder, a machine's home).

Reads files only; runs no project code. A fresh clone must pass its tests with nothing beside it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "instance", "__pycache__", ".mypy_cache", ".ruff_cache",
             ".pytest_cache", ".hypothesis"}

# Pieces joined so that this file does not match itself.
_SHARED = "shared"
OUTSIDE = re.compile("|".join((
    r"\.\./" + _SHARED + r"\b",  # a folder beside the checkout
    r"(?<![\w.~-])" + _SHARED + r"/(?:reference|research|bench)\b",  # the same, named relatively
    r"(?<![\w.~-])/" + "work" + r"/",  # the machine this was written on
    r"(?<![\w.~-])/" + "home" + r"/[A-Za-z_][\w-]*/",  # someone's home directory
    r"(?<![\w.~-])/" + "Users" + r"/[A-Za-z_][\w-]*/",
    r"(?<![\w.~-])/" + "root" + r"/",
)))


def tracked_files() -> list[Path]:
    """``git ls-files`` when this is a git checkout, else every file under the root but build and venv folders."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        found: list[Path] = []
        for folder, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
            found.extend(Path(folder) / f for f in files)
        return found
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_the_pattern_catches_what_it_must() -> None:
    for text in ("see ../" + _SHARED + "/bench/", "/" + "work/main/x", "Path('/" + "home/alice/data')",
                 _SHARED + "/reference/sds.md", "/" + "root/.cache"):
        assert OUTSIDE.search(text), text
    for text in ("tests/data/sds-fhir-api", "https://example.nhs.uk/work/items", "~/work/", "a/root/b",
                 "shared by the facades", "/usr/lib/postgresql"):
        assert not OUTSIDE.search(text), text


def test_no_tracked_file_names_a_path_outside_the_repository() -> None:
    offences = []
    for path in tracked_files():
        if not path.is_file():  # listed by git but deleted in the working tree
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offences.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not offences, "paths outside the repository:\n" + "\n".join(offences)
