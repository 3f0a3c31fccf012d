"""The on-disk archive of tile embeddings behind CLIP archive search, and its vector search.

Model-agnostic (numpy only; no torch, no GDAL): :mod:`mmrs.apis.clip_search` computes the
embeddings and footprints, this module stores and searches them.

Layout of an archive folder::

    DB/manifest.json                  format, model identity, embedding dim/dtype, the scenes
    DB/config.py                      the model config the archive was built with
    DB/scenes/<id>/chunk-00000.npy    (rows, D) embeddings of one chunk of tiles (float16/32)
    DB/scenes/<id>/chunk-00000.json   the chunk's tile records (window, footprints, ...)
    DB/index/faiss-<revision>.index   cached faiss index (rebuilt when the archive changes)
    DB/.lock                          held while a process writes the archive

**Resumable, all-or-nothing writes.** A scene's tiles (row-major grid order) are cut into
chunks of ``chunk_tiles`` tiles. Each chunk is written as its ``.npy`` then its ``.json`` (the
commit marker), each through :func:`mmrs.geo.atomic.atomic_output`, so a killed process leaves
whole chunks only. The manifest (replaced atomically too) marks a scene ``'indexing'`` before
its first chunk and ``'complete'`` after its last; a restart with the same options skips the
committed chunks and computes the others exactly as an uninterrupted run would (chunks always
start at the same tile, so their batches are the same), giving the same archive. Only complete
scenes are searched.

**Rows.** The searchable rows are the complete scenes in manifest order, their chunks in order,
the chunk's tiles in order; :meth:`TileArchive.locate` maps a row back to its tile record.

**Search.** :func:`search` scores ``queries @ embeddings.T`` (cosine similarity: both sides are
L2-normalised) and returns the top ``k`` rows, best first (ties by row). Backends:

- ``'numpy'``: exact; streams the chunk files (memory-mapped, one chunk at a time), so memory
  is bounded by the chunk size, not the archive;
- ``'faiss'``: exact inner product (``faiss.IndexFlatIP``) over all rows in memory, built from
  the chunks on first use and cached in ``DB/index/`` keyed by :meth:`TileArchive.revision`;
- ``'auto'``: faiss when ``faiss`` imports, numpy otherwise.
"""
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrs.geo.atomic import atomic_output

#: ``format`` member of every manifest.
FORMAT = 'mmrs-clip-archive'
#: Manifest version written (and the only one read).
VERSION = 1
#: Embedding dtypes an archive may store.
DTYPES = ('float16', 'float32')
#: Search backends of :func:`search`.
BACKENDS = ('auto', 'numpy', 'faiss')
MANIFEST = 'manifest.json'


class ArchiveError(ValueError):
    """An archive folder that cannot be used as asked (message names the folder)."""


class ModelMismatchError(ArchiveError):
    """The archive was built with another model than the one given."""


class ArchiveLockedError(RuntimeError):
    """Another process is writing the archive."""


@dataclass(frozen=True)
class ModelIdentity:
    """What makes two sets of embeddings comparable.

    Attributes:
        dim: Embedding dimension.
        config_hash: SHA-256 of the model config (canonical JSON, without the checkpoint path).
        weights_hash: SHA-256 of the model's state dict (names, dtypes, shapes and bytes).
        preprocessing: Input size, mean and std of the image tower.
        description: Free text for messages (config file, checkpoint); not compared.
    """

    dim: int
    config_hash: str
    weights_hash: str
    preprocessing: Mapping[str, Any]
    description: str = ''

    def to_dict(self) -> dict:
        return dict(dim=int(self.dim), config_hash=self.config_hash,
                    weights_hash=self.weights_hash, preprocessing=dict(self.preprocessing),
                    description=self.description)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'ModelIdentity':
        return cls(dim=int(data['dim']), config_hash=str(data['config_hash']),
                   weights_hash=str(data['weights_hash']),
                   preprocessing=dict(data.get('preprocessing', {})),
                   description=str(data.get('description', '')))

    def differences(self, other: 'ModelIdentity') -> list[str]:
        """Human-readable differences that make embeddings of ``self`` and ``other``
        incomparable (empty: same model)."""
        diffs = []
        if self.dim != other.dim:
            diffs.append(f'embedding dim {self.dim} vs {other.dim}')
        if self.config_hash != other.config_hash:
            diffs.append(f'model config hash {self.config_hash[:12]} vs '
                         f'{other.config_hash[:12]}')
        if self.weights_hash != other.weights_hash:
            diffs.append(f'weights hash {self.weights_hash[:12]} vs {other.weights_hash[:12]}')
        if _jsonable(self.preprocessing) != _jsonable(other.preprocessing):
            diffs.append(f'preprocessing {dict(self.preprocessing)} vs '
                         f'{dict(other.preprocessing)}')
        return diffs


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON, all or nothing (replacing an existing file)."""
    with atomic_output(path, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + '\n',
                             encoding='utf-8')


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy``, all or nothing (replacing an existing file)."""
    with atomic_output(path, overwrite=True) as tmp:
        np.save(tmp, array, allow_pickle=False)


@dataclass(frozen=True)
class TileLocation:
    """Where one searchable row comes from."""

    scene: dict
    chunk: int
    index: int
    record: dict


class TileArchive:
    """An archive folder (see the module docstring). Open with :meth:`open` or
    :meth:`open_or_create`; the manifest is held in :attr:`manifest`."""

    def __init__(self, root: str | os.PathLike, manifest: dict) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self._chunk_cache: dict[tuple[str, int], dict] = {}

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: str | os.PathLike) -> 'TileArchive':
        """Open an existing archive.

        Raises:
            FileNotFoundError: ``root`` has no manifest.
            ArchiveError: The manifest is not an mmrs CLIP archive of a known version.
        """
        root = Path(root)
        path = root / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f'{root} is not a CLIP tile archive: {path} not found '
                                    '(create one with `tools/clip_search.py index`)')
        try:
            manifest = json.loads(path.read_text(encoding='utf-8'))
        except (OSError, ValueError) as err:
            raise ArchiveError(f'cannot read the manifest {path}: {err}') from err
        fmt = manifest.get('format') if isinstance(manifest, dict) else None
        if fmt != FORMAT:
            raise ArchiveError(f'{path} is not an mmrs CLIP archive manifest (format {fmt!r})')
        if manifest.get('version') != VERSION:
            raise ArchiveError(f'{path} has archive version {manifest.get("version")!r}; this '
                               f'mmrs reads version {VERSION}')
        return cls(root, manifest)

    @classmethod
    def open_or_create(cls, root: str | os.PathLike, identity: ModelIdentity,
                       dtype: str = 'float16', config_text: str | None = None,
                       model_info: Mapping[str, Any] | None = None) -> 'TileArchive':
        """Open ``root`` for appending with ``identity``'s model, creating it if needed.

        Args:
            root: Archive folder (created if missing or empty).
            identity: The model that will write embeddings.
            dtype: Embedding dtype of a new archive (an existing one keeps its own).
            config_text: Model config saved as ``config.py`` in a new archive.
            model_info: ``config``/``checkpoint`` paths recorded for later queries.

        Raises:
            ModelMismatchError: The archive holds embeddings of another model.
            ArchiveError: ``root`` is a non-empty folder that is not an archive, or
                ``dtype`` is unknown.
        """
        root = Path(root)
        if (root / MANIFEST).is_file():
            archive = cls.open(root)
            archive.check_model(identity)
            return archive
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ArchiveError(f'{root} exists and is not a CLIP tile archive (no '
                               f'{MANIFEST}); give an empty or new folder')
        if dtype not in DTYPES:
            raise ArchiveError(f'embedding dtype must be one of {DTYPES}, got {dtype!r}')
        root.mkdir(parents=True, exist_ok=True)
        if config_text is not None:
            with atomic_output(root / 'config.py', overwrite=True) as tmp:
                Path(tmp).write_text(config_text, encoding='utf-8')
        manifest = dict(format=FORMAT, version=VERSION, dtype=dtype,
                        model=identity.to_dict(), model_info=dict(model_info or {}), scenes=[])
        archive = cls(root, manifest)
        archive.save()
        return archive

    def save(self) -> None:
        """Write the manifest (atomically)."""
        write_json(self.root / MANIFEST, self.manifest)

    @contextmanager
    def locked(self) -> Iterator['TileArchive']:
        """Hold the archive's write lock (``ArchiveLockedError`` if another process has it)."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; single writer is the user's job
            yield self
            return
        with open(self.root / '.lock', 'a+') as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise ArchiveLockedError(f'{self.root} is being written by another process '
                                         '(its .lock is held); wait for it to finish') from None
            try:
                self.remove_stale_temporaries()
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def remove_stale_temporaries(self) -> list[Path]:
        """Remove the temporary folders a killed writer left (``.mmrs-tmp-*``, see
        :mod:`mmrs.geo.atomic`); only call this while holding the lock."""
        from mmrs.geo.atomic import _TEMP_PREFIX
        stale = [p for pattern in (f'{_TEMP_PREFIX}*', f'scenes/*/{_TEMP_PREFIX}*',
                                   f'index/{_TEMP_PREFIX}*')
                 for p in self.root.glob(pattern) if p.is_dir()]
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        return stale

    # ----------------------------------------------------------------- model
    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity.from_dict(self.manifest['model'])

    @property
    def dim(self) -> int:
        return int(self.manifest['model']['dim'])

    @property
    def dtype(self) -> str:
        return str(self.manifest['dtype'])

    def check_model(self, identity: ModelIdentity) -> None:
        """Refuse a model whose embeddings are not comparable with the archive's.

        Raises:
            ModelMismatchError: Naming the archive and every difference.
        """
        diffs = self.identity.differences(identity)
        if diffs:
            raise ModelMismatchError(
                f'{self.root} was built with another model ({self.identity.description}) '
                f'than the one given ({identity.description}): {"; ".join(diffs)}. Use the '
                'archive\'s own config and checkpoint, or a new archive folder.')

    # ----------------------------------------------------------------- scenes
    @property
    def scenes(self) -> list[dict]:
        return self.manifest['scenes']

    def scene(self, scene_id: str) -> dict:
        for scene in self.scenes:
            if scene['id'] == scene_id:
                return scene
        raise KeyError(f'{self.root} has no scene {scene_id!r}')

    def find_scene(self, fingerprint: Mapping[str, Any]) -> dict | None:
        """The scene with this file fingerprint, if any."""
        for scene in self.scenes:
            if _jsonable(scene['fingerprint']) == _jsonable(fingerprint):
                return scene
        return None

    def begin_scene(self, record: dict) -> dict:
        """Add (or keep, when resuming) a scene in state ``'indexing'`` and save the manifest.

        Raises:
            ArchiveError: A scene with the same id and different options is being indexed.
        """
        for scene in self.scenes:
            if scene['id'] == record['id']:
                keys = ('tiling', 'chunk_tiles', 'bands', 'nodata', 'stretch', 'num_tiles')
                old = {k: scene.get(k) for k in keys}
                new = {k: record.get(k) for k in keys}
                if _jsonable(old) != _jsonable(new):
                    raise ArchiveError(
                        f'{record["path"]} is partly indexed in {self.root} with other options '
                        f'({old}); resume with the same options (now {new})')
                return scene
        record = dict(record, status='indexing')
        self.scenes.append(record)
        self.save()
        return record

    def scene_dir(self, scene_id: str) -> Path:
        return self.root / 'scenes' / scene_id

    def _chunk_paths(self, scene_id: str, chunk: int) -> tuple[Path, Path]:
        base = self.scene_dir(scene_id) / f'chunk-{chunk:05d}'
        return base.with_suffix('.npy'), base.with_suffix('.json')

    def chunk_done(self, scene_id: str, chunk: int) -> bool:
        """Whether the chunk was committed (its ``.json`` exists after its ``.npy``)."""
        npy, meta = self._chunk_paths(scene_id, chunk)
        return meta.is_file() and npy.is_file()

    def write_chunk(self, scene_id: str, chunk: int, embeddings: np.ndarray,
                    records: Sequence[dict], extra: Mapping[str, Any]) -> None:
        """Commit one chunk: embeddings (``(len(records), D)``) then the records.

        Raises:
            ValueError: Shapes that do not fit the archive.
        """
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape != (len(records), self.dim):
            raise ValueError(f'chunk {chunk} of scene {scene_id}: embeddings of shape '
                             f'{embeddings.shape} for {len(records)} records of dim {self.dim}')
        npy, meta = self._chunk_paths(scene_id, chunk)
        npy.parent.mkdir(parents=True, exist_ok=True)
        write_npy(npy, np.ascontiguousarray(embeddings.astype(self.dtype)))
        write_json(meta, dict(extra, chunk=chunk, rows=len(records), records=list(records)))

    def read_chunk(self, scene_id: str, chunk: int) -> dict:
        """The chunk's JSON (records and extras), cached."""
        key = (scene_id, chunk)
        if key not in self._chunk_cache:
            meta = self._chunk_paths(scene_id, chunk)[1]
            try:
                self._chunk_cache[key] = json.loads(meta.read_text(encoding='utf-8'))
            except (OSError, ValueError) as err:
                raise ArchiveError(f'cannot read chunk file {meta}: {err}') from err
        return self._chunk_cache[key]

    def chunk_embeddings(self, scene_id: str, chunk: int, mmap: bool = True) -> np.ndarray:
        """``(rows, D)`` embeddings of a chunk (memory-mapped by default).

        Raises:
            ArchiveError: Missing or malformed file.
        """
        npy = self._chunk_paths(scene_id, chunk)[0]
        try:
            arr = np.load(npy, mmap_mode='r' if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ArchiveError(f'cannot read embeddings {npy}: {err}') from err
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ArchiveError(f'{npy} holds an array of shape {arr.shape}; the archive '
                               f'stores {self.dim}-d embeddings')
        return arr

    def finish_scene(self, scene_id: str, summary: Mapping[str, Any]) -> dict:
        """Mark a scene complete (``summary`` must hold ``chunk_rows``) and save."""
        scene = self.scene(scene_id)
        scene.update(summary, status='complete')
        self.save()
        return scene

    def complete_scenes(self) -> list[dict]:
        return [s for s in self.scenes if s.get('status') == 'complete']

    def incomplete_scenes(self) -> list[dict]:
        return [s for s in self.scenes if s.get('status') != 'complete']

    # ----------------------------------------------------------------- rows
    def chunks(self) -> Iterator[tuple[int, dict, int, int]]:
        """``(first row, scene, chunk index, rows)`` of every searchable chunk, in row order
        (chunks without rows included, with ``rows == 0``)."""
        start = 0
        for scene in self.complete_scenes():
            for chunk, rows in enumerate(scene['chunk_rows']):
                yield start, scene, chunk, int(rows)
                start += int(rows)

    def __len__(self) -> int:
        """Number of searchable rows."""
        return sum(int(r) for s in self.complete_scenes() for r in s['chunk_rows'])

    def revision(self) -> str:
        """Hash of the searchable rows' layout (changes whenever a scene completes)."""
        layout = [(s['id'], list(s['chunk_rows'])) for s in self.complete_scenes()]
        return hashlib.sha256(json.dumps([self.dim, self.dtype, layout]).encode()).hexdigest()[:16]

    def iter_embeddings(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, (rows, D) memory-mapped embeddings)`` per non-empty chunk."""
        for start, scene, chunk, rows in self.chunks():
            if rows:
                arr = self.chunk_embeddings(scene['id'], chunk)
                if arr.shape[0] != rows:
                    raise ArchiveError(f'chunk {chunk} of scene {scene["path"]} in {self.root} '
                                       f'has {arr.shape[0]} rows, the manifest says {rows}')
                yield start, arr

    def locate(self, rows: Sequence[int]) -> list[TileLocation]:
        """The tile record of each row."""
        table = [(start, scene, chunk, n) for start, scene, chunk, n in self.chunks() if n]
        starts = np.array([t[0] for t in table], dtype=np.int64)
        total = len(self)
        out = []
        for row in rows:
            row = int(row)
            if not 0 <= row < total:
                raise IndexError(f'row {row} out of range for {self.root} ({total} rows)')
            i = int(np.searchsorted(starts, row, side='right') - 1)
            start, scene, chunk, _ = table[i]
            record = self.read_chunk(scene['id'], chunk)['records'][row - start]
            out.append(TileLocation(scene=scene, chunk=chunk, index=row - start, record=record))
        return out


# ---------------------------------------------------------------------------- search
def _as_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None]
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f'queries must be (Q, {dim}) embeddings, got shape {q.shape}')
    if not np.isfinite(q).all():
        raise ValueError('query embeddings contain NaN or infinite values')
    return np.ascontiguousarray(q)


def _merge_topk(best_s: np.ndarray, best_r: np.ndarray, scores: np.ndarray,
                rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the ``k`` best of the union, sorted by score (desc) then row (asc)."""
    s = np.concatenate([best_s, scores], axis=1)
    r = np.concatenate([best_r, rows], axis=1)
    order = np.lexsort((r, -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), np.take_along_axis(r, order, 1)


def search_numpy(archive: TileArchive, queries: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by streaming the chunk files (see the module docstring).

    Returns:
        ``(scores (Q, k'), rows (Q, k'))``, ``k' = min(k, rows in the archive)``.
    """
    q = _as_queries(queries, archive.dim)
    best_s = np.empty((q.shape[0], 0), np.float32)
    best_r = np.empty((q.shape[0], 0), np.int64)
    for start, emb in archive.iter_embeddings():
        scores = np.asarray(emb, dtype=np.float32) @ q.T  # (rows, Q)
        scores = np.ascontiguousarray(scores.T)
        kk = min(k, scores.shape[1])
        idx = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < scores.shape[1] else \
            np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        part = np.take_along_axis(scores, idx, 1)
        best_s, best_r = _merge_topk(best_s, best_r, part, idx.astype(np.int64) + start, k)
    return best_s, best_r


def faiss_available() -> bool:
    """Whether ``import faiss`` works."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def faiss_index(archive: TileArchive, cache: bool = True) -> Any:
    """A ``faiss.IndexFlatIP`` over every row, loaded from or saved to ``DB/index/``.

    Memory: the index holds all rows in float32 (``4 * D`` bytes each).
    """
    import faiss
    folder = archive.root / 'index'
    path = folder / f'faiss-{archive.revision()}.index'
    if cache and path.is_file():
        index = faiss.read_index(str(path))
        if index.ntotal == len(archive) and index.d == archive.dim:
            return index
    index = faiss.IndexFlatIP(archive.dim)
    for _, emb in archive.iter_embeddings():
        index.add(np.ascontiguousarray(emb, dtype=np.float32))
    if cache:
        try:
            folder.mkdir(exist_ok=True)
            with atomic_output(path, overwrite=True) as tmp:
                faiss.write_index(index, str(tmp))
            for stale in folder.glob('faiss-*.index'):
                if stale != path:
                    stale.unlink(missing_ok=True)
        except OSError:  # a read-only archive is still searchable, only not cached
            pass
    return index


def search_faiss(archive: TileArchive, queries: np.ndarray, k: int,
                 index: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` with ``faiss.IndexFlatIP`` (same order rule as :func:`search_numpy`)."""
    q = _as_queries(queries, archive.dim)
    index = faiss_index(archive) if index is None else index
    kk = min(k, index.ntotal)
    if kk == 0:
        return np.empty((q.shape[0], 0), np.float32), np.empty((q.shape[0], 0), np.int64)
    scores, rows = index.search(q, kk)
    order = np.lexsort((rows, -scores), axis=1)  # ties by row, as the numpy backend
    return (np.take_along_axis(scores, order, 1).astype(np.float32),
            np.take_along_axis(rows, order, 1).astype(np.int64))


def resolve_backend(backend: str) -> str:
    """``'auto'`` -> ``'faiss'`` when installed, else ``'numpy'``; others checked.

    Raises:
        ValueError: Unknown backend.
        ImportError: ``'faiss'`` asked for and not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f'search backend must be one of {BACKENDS}, got {backend!r}')
    if backend == 'auto':
        return 'faiss' if faiss_available() else 'numpy'
    if backend == 'faiss' and not faiss_available():
        raise ImportError("backend 'faiss' needs faiss: pip install faiss-cpu (or use "
                          "backend 'numpy', exact and streaming)")
    return backend


def search(archive: TileArchive, queries: np.ndarray, k: int = 10,
           backend: str = 'auto') -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows of ``archive`` for each query embedding (see the module docstring).

    Args:
        archive: The archive.
        queries: ``(D,)`` or ``(Q, D)`` L2-normalised embeddings.
        k: Results per query (>= 1).
        backend: One of :data:`BACKENDS`.

    Returns:
        ``(scores, rows)``, each ``(Q, min(k, len(archive)))``, best first.

    Raises:
        ValueError: ``k < 1``, bad query shape, unknown backend.
    """
    if k < 1:
        raise ValueError(f'top-k must be >= 1, got {k}')
    backend = resolve_backend(backend)
    if backend == 'faiss':
        return search_faiss(archive, queries, k)
    return search_numpy(archive, queries, k)
