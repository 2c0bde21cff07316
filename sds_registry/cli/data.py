"""``sds seed``, ``sds import``, ``sds export`` and ``sds resolve``: the directory's data in and out."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import IO, Any

import click

from sds_registry.cli.common import database, finish, load_json, progress, settings_or_exit
from sds_registry.db import begin_write, transaction
from sds_registry.errors import RegistryError

SEED_DIR = Path(str(resources.files("sds_registry") / "seed_data"))  # shipped in the package


class _Counted:
    """A text stream that reports how much of it has been read (for the progress bar)."""

    def __init__(self, stream: IO[str], update: Callable[[int], None]) -> None:
        self.stream, self.update, self.name = stream, update, getattr(stream, "name", "<stream>")

    def read(self, size: int = -1) -> str:
        text = self.stream.read(size)
        self.update(len(text))
        return text

    def seekable(self) -> bool:  # the import reads a file again when its fast first load gives way
        return self.stream.seekable()

    def tell(self) -> int:
        return self.stream.tell()

    def seek(self, offset: int) -> int:
        return self.stream.seek(offset)

    def __iter__(self) -> Iterator[str]:
        pending = 0
        for line in self.stream:
            pending += len(line)
            if pending >= 1 << 20:  # the bar is redrawn a MiB at a time, not a line at a time
                self.update(pending)
                pending = 0
            yield line
        self.update(pending)


@contextmanager
def _readable(path: Path) -> Iterator[None]:
    """A file that is not UTF-8 text (or cannot be read) is a usage error naming it, not a traceback; so is a
    write the plan could not foresee (a clash between two updates, say)."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: {_bad_utf8(path) or exc}; nothing was stored") from None
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read: {exc}; nothing was stored") from None
    except RegistryError as exc:
        raise click.ClickException(f"{path}: {exc}; nothing was stored") from None


def _bad_utf8(path: Path) -> str | None:
    """Where the file stops being UTF-8, by line and column (the decoder's own position is within the chunk it
    was reading, which means nothing to the user). Reads a MiB at a time."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line, column = 1, 1
    try:
        with path.open("rb") as raw:
            while block := raw.read(1 << 20):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    good = block[:exc.start]
                    if b"\n" in good:
                        line, column = line + good.count(b"\n"), len(good) - good.rindex(b"\n")
                    else:
                        column += len(good)
                    return (f"line {line}, column {column}: not UTF-8 text (byte 0x{block[exc.start]:02x}); "
                            "save the file as UTF-8")
                line += block.count(b"\n")
                column = len(block) - block.rindex(b"\n") if b"\n" in block else column + len(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return f"line {line}: the file ends inside a UTF-8 character"
    except OSError:
        return None
    return None


@contextmanager
def _bulk_load() -> Iterator[None]:
    """Cyclic garbage collection for a bulk load: a chunk's records are thousands of small objects that all live
    until the chunk is stored, and with the default thresholds (a young collection every 700 allocations, older
    generations every 10) the collector keeps rescanning them for nothing: about a quarter of an import's CPU.
    Memory stays bounded (collections still run, just less often)."""
    old = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def side_file(path: Path) -> Path:
    """Where an LDIF export puts the data-sharing agreements LDIF cannot carry: ``x.ldif`` -> ``x.agreements.json``."""
    return path.with_suffix(".agreements.json")


SYNTHETIC_CHUNK = 1000


@click.command()
@click.option("--synthetic", type=click.IntRange(min=0), default=0, help="Also add N synthetic practices.")
@click.option("--start", type=click.IntRange(min=0), default=0, help="First synthetic practice number.")
def seed(synthetic: int, start: int) -> None:
    """Load the sample directory shipped in the package (idempotent), plus N deterministic synthetic practices."""
    from sds_registry.services.synthetic import seed_practices
    from sds_registry.services.transfer import import_directory

    settings = settings_or_exit()
    added = 0
    with database(settings) as factory, _bulk_load():
        with factory() as session:
            begin_write(session)
            for path in sorted(SEED_DIR.glob("*.json")):
                report = import_directory(session, load_json(path), skip_existing=True)
                click.echo(f"{path.name}:")
                finish(session, report, path.name)
        with progress(synthetic, "synthetic practices") as update:
            for first in range(start, start + synthetic, SYNTHETIC_CHUNK):
                numbers = list(range(first, min(first + SYNTHETIC_CHUNK, start + synthetic)))
                with transaction(factory) as session:  # one transaction a chunk: an interrupted run resumes
                    begin_write(session)
                    try:
                        added += seed_practices(session, numbers)
                    except RegistryError as exc:
                        raise click.ClickException(str(exc)) from None
                update(len(numbers))
    if synthetic:
        click.echo(f"synthetic practices: {added} added, {synthetic - added} already present")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mode", type=click.Choice(["create", "upsert", "sync"]), default="create", show_default=True,
              help="create: new records only (one already stored is an error); upsert: create or update; sync: "
                   "upsert, and delete the stored records of the file's ODS codes that the file does not hold.")
@click.option("--lenient", is_flag=True, help="Store and flag values that break our rules instead of refusing.")
@click.option("--with-agreements", "agreements_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="LDIF only: data-sharing agreements and lenient flags (JSON, as sds export writes them) to load "
                   "with it [default: FILE's .agreements.json when it exists].")
def import_(file: Path, mode: Any, lenient: bool, agreements_file: Path | None) -> None:
    """Import FILE (.json in the export format, or .ldif as ldapsearch prints it): all or nothing."""
    settings = settings_or_exit()
    ldif = file.suffix.lower() == ".ldif"
    if agreements_file and not ldif:
        raise click.UsageError("--with-agreements goes with an LDIF file (JSON files carry their agreements)")
    with database(settings) as factory, factory() as session, _bulk_load():
        begin_write(session)
        report: Any
        with progress(file.stat().st_size, f"importing {file.name}") as update, \
                file.open(encoding="utf-8") as raw, _readable(file):
            stream: Any = _Counted(raw, update)
            if ldif:
                from sds_registry.ldap.ldif_import import agreement_records, import_ldif

                side = agreements_file or (side_file(file) if side_file(file).is_file() else None)
                agreements: list[Any] = []
                flags: Any = {}
                if side is not None:
                    click.echo(f"data-sharing agreements: {side}")
                    document = load_json(side)
                    items = document.get("data_sharing_agreements") if isinstance(document, dict) else None
                    if not isinstance(items, list):
                        raise click.ClickException(f"{side}: expected {{\"data_sharing_agreements\": [...]}}")
                    agreements = agreement_records(items, side.name)
                    flags = document.get("record_flags") or {}
                    if not isinstance(flags, dict):
                        raise click.ClickException(f"{side}: record_flags must map DNs to lists of flags")
                report = import_ldif(session, stream, lenient=lenient, mode=mode, agreements=agreements,
                                     flags=flags)
            else:
                from sds_registry.services.transfer import import_directory

                report = import_directory(session, stream, lenient=lenient, mode=mode)
        if mode == "create" and any("already exists" in " ".join(r.reasons) for r in report.rejected):
            click.echo("hint: --mode upsert updates records that are already stored; --mode sync also deletes")
        finish(session, report, str(file))


@click.command()
@click.option("--format", "fmt", type=click.Choice(["json", "ldif"]), default="json", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout).")
@click.option("--with-agreements", "agreements_file", type=click.Path(dir_okay=False, path_type=Path),
              help="LDIF only: where to write the data-sharing agreements and lenient flags [default: OUTPUT's "
                   ".agreements.json].")
def export(fmt: str, output: Path | None, agreements_file: Path | None) -> None:
    """Write the whole directory as JSON (re-importable) or LDIF (loads into slapd and back into us; the
    agreements, which LDIF cannot carry, go to a JSON side file that sds import reads back)."""
    from sds_registry.services.transfer import count_records, export_agreements, export_records, write_json

    settings = settings_or_exit()
    if agreements_file and fmt != "ldif":
        raise click.UsageError("--with-agreements goes with --format ldif (JSON carries the agreements)")
    stream = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        with database(settings) as factory, factory() as session:
            with progress(count_records(session) if sys.stderr.isatty() else 0, "exporting") as update:
                if fmt == "ldif":
                    from sds_registry.ldap.ldif import export_ldif
                    from sds_registry.ldap.ldif_export import record_flags

                    export_ldif(session, stream, progress=update)
                    agreements = [a for _, a in export_agreements(session)]
                    flags = record_flags(session)
                    side = agreements_file or (side_file(output) if output else None)
                    if side is not None:
                        with side.open("w", encoding="utf-8") as f:
                            json.dump({"data_sharing_agreements": agreements, "record_flags": flags}, f, indent=1)
                            f.write("\n")
                    elif agreements or flags:
                        click.echo(f"warning: {len(agreements)} data-sharing agreement(s) and the flags of "
                                   f"{len(flags)} record(s) not written (LDIF cannot carry them): give -o FILE or "
                                   "--with-agreements FILE", err=True)
                else:
                    def counted() -> Iterator[tuple[str, dict[str, Any]]]:
                        for n, item in enumerate(export_records(session), 1):
                            if n % 1000 == 0:
                                update(1000)
                            yield item

                    write_json(counted(), stream)
    finally:
        if output:
            stream.close()


@click.command()
@click.argument("ods")
@click.argument("interaction")
def resolve(ods: str, interaction: str) -> None:
    """The GP Connect lookup: service root URL, party key and ASID for a practice and interaction."""
    from sds_registry.services.directory import resolve as do_resolve

    with database(settings_or_exit()) as factory, factory() as session:
        try:
            found = do_resolve(session, ods, interaction)
        except RegistryError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({
        "ods_code": found.ods_code, "interaction_id": found.interaction_id,
        "service_root_url": found.service_root_url, "party_key": found.party_key, "asid": found.asid,
        "fqdn": found.fqdn, "cpa_id": found.cpa_id,
    }, indent=2))
