"""All-or-nothing output files: a run either leaves its complete result or nothing.

Large-scene inference writes for an hour; a crash, a full disk or Ctrl-C in the middle must not
leave a truncated GeoTIFF or GeoPackage that a user (or the next pipeline step) takes for a
result. :func:`atomic_output` gives the writer a path inside a private temporary folder *next to*
the target (same file system, so the final :func:`os.replace` is atomic) with the target's own
file name, so every driver sees the suffix it expects and sidecar files get the right names
(``change.gpkg-wal``, ``change.tif.aux.xml``, a shapefile's ``.dbf``/``.shx``/``.prj``). Only when
the ``with`` block ends without an exception are the files moved into place, the main file last;
on any exception, ``KeyboardInterrupt`` included, the temporary folder is removed. (A process
killed with SIGKILL cannot clean up: its hidden ``.mmrs-tmp-*`` folder is left beside the target,
never a file with the target's name.)

:func:`check_outputs` performs the same refusal checks for several outputs up front, so a run
that writes ``change.tif`` and then ``change.gpkg`` does not fail after an hour because the second
one already exists.
"""
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: Suffixes appended to a file name by the libraries that write our outputs. A stale one left by
#: an overwritten output would be applied to (SQLite journals) or describe (GDAL ``.aux.xml``,
#: ``.ovr`` overviews, ``.msk`` masks) the new file, so they are removed on overwrite.
SIDECAR_SUFFIXES = ('-journal', '-wal', '-shm', '.aux.xml', '.ovr', '.msk')

_TEMP_PREFIX = '.mmrs-tmp-'


class OutputAppearedError(FileExistsError):
    """The target was created by someone else while :func:`atomic_output` was writing it."""


def check_outputs(paths: Iterable[str | os.PathLike], overwrite: bool = False) -> list[Path]:
    """Check that every output of a run can be written, before the run starts.

    Args:
        paths: The output files of one run.
        overwrite: Whether existing files may be replaced.

    Returns:
        The paths as absolute :class:`~pathlib.Path` objects, in the given order.

    Raises:
        FileExistsError: An output exists and ``overwrite`` is false.
        IsADirectoryError: An output is an existing folder.
        NotADirectoryError: The folder of an output is an existing file.
        PermissionError: The folder of an output is not writable.
        ValueError: The same file is given twice.
    """
    checked: list[Path] = []
    for raw in paths:
        path = Path(os.path.abspath(Path(raw).expanduser()))
        if path in checked:
            raise ValueError(f'output {path} is given twice: the second write would replace '
                             'the first')
        if path.is_dir():
            raise IsADirectoryError(f'output {path} is an existing folder, not a file')
        if path.exists() and not overwrite:
            raise FileExistsError(f'output {path} already exists; remove it or pass '
                                  'overwrite=True (--overwrite) to replace it')
        folder = _existing_ancestor(path.parent)
        if not folder.is_dir():
            raise NotADirectoryError(f'cannot write {path}: {folder} is a file, not a folder')
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f'cannot write {path}: folder {folder} is not writable')
        checked.append(path)
    return checked


@contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Write an output under a temporary name and move it into place only on success.

    Missing parent folders of ``path`` are created. Yields a path that does not exist yet, in
    a temporary folder beside ``path`` and with the same file name; write it (and any sidecar
    files the driver adds) inside the ``with`` block::

        with atomic_output('out/change.gpkg', overwrite=args.overwrite) as tmp:
            with fiona.open(tmp, 'w', driver='GPKG', ...) as dst:
                dst.writerecords(records)

    Args:
        path: The final output file.
        overwrite: Whether an existing file at ``path`` may be replaced.

    Yields:
        The temporary path to write to.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false (checked on entry).
        OutputAppearedError: ``path`` was created by another process while the block ran and
            ``overwrite`` is false; the complete result is kept in the temporary folder named
            in the message instead of being discarded.
        FileNotFoundError: The block finished without creating the temporary file.
        Exception: Everything :func:`check_outputs` raises.
    """
    target = check_outputs([path], overwrite)[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    temp_dir = Path(tempfile.mkdtemp(prefix=f'{_TEMP_PREFIX}{target.name}.', dir=target.parent))
    try:
        yield temp_dir / target.name
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    try:
        _commit(temp_dir, target, overwrite)
    except OutputAppearedError:
        raise  # keep the complete result: the message says where it is
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    shutil.rmtree(temp_dir, ignore_errors=True)


def _commit(temp_dir: Path, target: Path, overwrite: bool) -> None:
    """Move the written files from ``temp_dir`` beside ``target``, ``target`` itself last."""
    written = temp_dir / target.name
    if not written.is_file():
        raise FileNotFoundError(f'nothing was written to {target}: the writer did not create '
                                f'{written}')
    if target.exists() and not overwrite:
        raise OutputAppearedError(
            f'output {target} appeared while it was being written; the complete new result '
            f'is kept as {written}')
    for suffix in SIDECAR_SUFFIXES:  # stale sidecars of the file being replaced
        stale = target.with_name(target.name + suffix)
        if stale.is_file() and not (temp_dir / stale.name).exists():
            stale.unlink()
    for item in sorted(temp_dir.iterdir()):
        if item.name != target.name:
            os.replace(item, target.parent / item.name)
    os.replace(written, target)


def _existing_ancestor(folder: Path) -> Path:
    """The nearest existing folder at or above ``folder`` (where missing ones get created)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder
