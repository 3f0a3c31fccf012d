"""Archive search over GeoTIFF tiles with CLIP (mmrs.apis.clip_search / clip_index).

The model is a real :class:`mmrs.models.clip.CLIP` with tiny random-weight towers (32 px
input, 16-d embeddings). Oracles that do not go through the code under test:

- which tiles are all nodata, and every window, come from the numpy array the scene was
  written from;
- footprints are checked against rasterio's (GDAL's) window bounds and ``warp.transform``;
- an interior tile saved as a PNG and used as the query image must come back first with
  cosine similarity ~1 (same pixels, same preprocessing on a path that never tiles);
- a uint16 copy of the scene (``v * 257``) with ``stretch='fixed:0,65535'`` must give the
  uint8 scene's embeddings (``257 * 255 == 65535``);
- resumption is checked by comparing every byte of a crashed-and-resumed archive with an
  uninterrupted one; the faiss backend against the numpy one.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window, bounds as window_bounds

from mmrs.apis.clip_index import (ArchiveError, ModelIdentity, ModelMismatchError, TileArchive,
                                  faiss_available, search)
from mmrs.apis.clip_search import CLIPArchiveSearch, CLIPTileEncoder, Stretch
from tests.conftest import shared_data_root

torch.set_num_threads(1)
TINY = dict(embed_dim=16,
            vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8, head_width=16),
            text_cfg=dict(context_length=16, width=32, heads=2, layers=1))
H, W, TILE = 300, 250, 64
COLLAR = 70  # columns 0..69 are nodata: the first tile column (x < 64) is all nodata
PROFILE = dict(driver='GTiff', crs='EPSG:32632', transform=Affine(10, 0, 600000, 0, -10, 5e6),
               nodata=0)
VL = shared_data_root() / 'vl_samples'


def tiny_clip(seed: int = 0, embed_dim: int = 16):
    from mmrs.models.clip import CLIP
    torch.manual_seed(seed)
    return CLIP(model_name='ViT-B-32', model_cfg=dict(TINY, embed_dim=embed_dim), loss=None)


def make_pixels(seed: int = 0) -> np.ndarray:
    """``(3, H, W)`` uint8 texture (values 1..255) with a nodata collar and a nodata hole."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([(xx * 3 + yy) % 200, (yy * 2) % 180, ((xx - yy) % 150)]).astype(np.float64)
    img = np.clip(base + rng.normal(40, 20, (3, H, W)), 1, 255).astype(np.uint8)
    img[:, :, :COLLAR] = 0
    img[:, 130:150, 140:170] = 0  # partial nodata inside a valid tile
    return img


def write_scene(path: Path, img: np.ndarray, **profile) -> Path:
    prof = dict(PROFILE, height=img.shape[1], width=img.shape[2], count=img.shape[0],
                dtype=str(img.dtype), **profile)
    with rasterio.open(path, 'w', **prof) as dst:
        dst.write(img)
    return path


@pytest.fixture(scope='module')
def encoder() -> CLIPTileEncoder:
    return CLIPTileEncoder(tiny_clip(), model_cfg=dict(type='CLIP', model_cfg=TINY))


@pytest.fixture(scope='module')
def searcher(encoder) -> CLIPArchiveSearch:
    return CLIPArchiveSearch(encoder=encoder)


@pytest.fixture(scope='module')
def scene(tmp_path_factory) -> Path:
    return write_scene(tmp_path_factory.mktemp('scene') / 'scene.tif', make_pixels())


@pytest.fixture(scope='module')
def db(tmp_path_factory, searcher, scene) -> Path:
    root = tmp_path_factory.mktemp('db') / 'archive'
    searcher.index([scene], root, tile=TILE, batch=3, chunk_tiles=5)
    return root


def all_embeddings(archive: TileArchive) -> np.ndarray:
    return np.concatenate([np.asarray(e, np.float32) for _, e in archive.iter_embeddings()])


def all_records(archive: TileArchive) -> list[dict]:
    return [loc.record for loc in archive.locate(range(len(archive)))]


class TestIndexing:
    def test_tiles_windows_and_nodata(self, db) -> None:
        archive = TileArchive.open(db)
        img = make_pixels()
        rows, cols = -(-H // TILE), -(-W // TILE)
        expected_skip, expected = set(), []
        for r in range(rows):
            for c in range(cols):
                y, x = r * TILE, c * TILE
                h, w = min(TILE, H - y), min(TILE, W - x)
                valid = (img[:, y:y + h, x:x + w] != 0).any(axis=0)
                if valid.any():
                    expected.append(([y, x, h, w], valid.mean()))
                else:
                    expected_skip.add((r, c))
        assert len(expected_skip) == rows  # the collar column
        records = all_records(archive)
        assert [r['window'] for r in records] == [e[0] for e in expected]
        np.testing.assert_allclose([r['valid_fraction'] for r in records],
                                   [e[1] for e in expected], atol=1e-6)
        (scene,) = archive.scenes
        assert scene['status'] == 'complete' and scene['skipped_nodata'] == rows
        assert scene['num_tiles'] == rows * cols and len(archive) == len(expected)
        skipped = {tuple(t) for k in range(scene['num_chunks'])
                   for t in archive.read_chunk(scene['id'], k)['skipped_nodata']}
        assert skipped == expected_skip
        emb = all_embeddings(archive)
        assert emb.shape == (len(expected), 16)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=2e-3)

    def test_embedding_equals_manual_preprocessing(self, db, encoder) -> None:
        """An edge tile with nodata: pad + fill with the mean, resize (PIL bicubic), normalise by
        hand."""
        archive = TileArchive.open(db)
        records = all_records(archive)
        i = next(i for i, r in enumerate(records) if r['window'][2] < TILE and
                 r['valid_fraction'] < 1)  # bottom row, cut by the scene edge, in the collar
        y, x, h, w = records[i]['window']
        img = make_pixels()[:, y:y + h, x:x + w].astype(np.float32)
        mean = np.array([0.48145466, 0.4578275, 0.40821073]) * 255
        std = np.array([0.26862954, 0.26130258, 0.27577711]) * 255
        canvas = np.tile(mean[:, None, None], (1, TILE, TILE)).astype(np.float32)
        nodata = (img == 0).all(axis=0)
        canvas[:, :h, :w] = np.where(nodata, mean[:, None, None], img)
        # PIL's bicubic filter on float images (mode 'F'), clamped to 0..255 as documented
        from PIL import Image
        small = np.stack([np.asarray(Image.fromarray(band, mode='F').resize(
            (32, 32), Image.BICUBIC)) for band in canvas]).clip(0, 255)
        x_in = (torch.from_numpy(small)[None] - torch.tensor(mean).view(1, 3, 1, 1).float()) / \
            torch.tensor(std).view(1, 3, 1, 1).float()
        with torch.no_grad():
            ref = encoder.model.clip.encode_image(x_in, normalize=True)[0].numpy()
        np.testing.assert_allclose(all_embeddings(archive)[i], ref, atol=2e-3)

    def test_footprints_match_windows(self, db) -> None:
        archive = TileArchive.open(db)
        transform = PROFILE['transform']
        for rec in all_records(archive):
            y, x, h, w = rec['window']
            left, bottom, right, top = window_bounds(Window(x, y, w, h), transform)
            ring = np.array(rec['polygon'])
            assert ring.shape == (5, 2)
            np.testing.assert_allclose(ring[:, 0].min(), left)
            np.testing.assert_allclose(ring[:, 0].max(), right)
            np.testing.assert_allclose(ring[:, 1].min(), bottom)
            np.testing.assert_allclose(ring[:, 1].max(), top)
            lon, lat = warp_transform('EPSG:32632', 'EPSG:4326', [left, right, right, left],
                                      [top, top, bottom, bottom])
            ll = np.array(rec['lonlat'])
            for corner in zip(lon, lat):  # every corner is a vertex of the lon/lat ring
                assert np.abs(ll - corner).max(axis=1).min() < 1e-7
            west, south, east, north = rec['lonlat_bounds']
            assert west <= min(lon) + 1e-9 and east >= max(lon) - 1e-9
            assert south <= min(lat) + 1e-9 and north >= max(lat) - 1e-9

    def test_resume_after_crash_gives_identical_archive(self, tmp_path, searcher,
                                                        scene) -> None:
        options = dict(tile=TILE, batch=2, chunk_tiles=4)
        searcher.index([scene], tmp_path / 'full', **options)
        calls = []

        def crash(n: int) -> None:
            calls.append(n)
            if len(calls) == 4:  # inside the second chunk
                raise KeyboardInterrupt('simulated kill')

        with pytest.raises(KeyboardInterrupt):
            searcher.index([scene], tmp_path / 'resumed', on_batch=crash, **options)
        partial = TileArchive.open(tmp_path / 'resumed')
        assert partial.scenes[0]['status'] == 'indexing' and len(partial) == 0
        # what a SIGKILL during a chunk write leaves: a temporary folder beside the chunks
        leftover = partial.scene_dir(partial.scenes[0]['id']) / '.mmrs-tmp-chunk-00001.npy.x1'
        leftover.mkdir()
        (leftover / 'chunk-00001.npy').write_bytes(b'half a file')
        summary = searcher.index([scene], tmp_path / 'resumed', **options)
        assert summary.chunks_resumed == 1  # the first chunk was committed before the crash
        full_files = sorted(p.relative_to(tmp_path / 'full')
                            for p in (tmp_path / 'full').rglob('*') if p.is_file())
        resumed_files = sorted(p.relative_to(tmp_path / 'resumed')
                               for p in (tmp_path / 'resumed').rglob('*') if p.is_file())
        assert full_files == resumed_files
        for rel in full_files:
            assert (tmp_path / 'full' / rel).read_bytes() == \
                (tmp_path / 'resumed' / rel).read_bytes(), rel

    def test_resume_with_other_options_refused(self, tmp_path, searcher, scene) -> None:
        def crash(n: int) -> None:
            raise RuntimeError('boom')

        with pytest.raises(RuntimeError, match='boom'):
            searcher.index([scene], tmp_path / 'db', tile=TILE, chunk_tiles=4, on_batch=crash)
        with pytest.raises(ArchiveError, match='partly indexed'):
            searcher.index([scene], tmp_path / 'db', tile=96, chunk_tiles=4)

    def test_append_and_same_scene_skipped(self, tmp_path, searcher, scene, db) -> None:
        root = tmp_path / 'db'
        shutil.copytree(db, root)
        before = len(TileArchive.open(root))
        other = write_scene(tmp_path / 'other.tif', make_pixels(seed=1))
        copy = tmp_path / 'copy_of_scene.tif'
        shutil.copy(scene, copy)
        summary = searcher.index([other, copy, other], root, tile=TILE, batch=3, chunk_tiles=5)
        assert summary.scenes_indexed == [str(other)]
        assert len(summary.scenes_skipped) == 2 and str(scene) in summary.scenes_skipped[0]
        archive = TileArchive.open(root)
        assert [s['path'] for s in archive.scenes] == [str(scene), str(other)]
        assert len(archive) == 2 * before
        if faiss_available():  # a cached index of the smaller archive is not reused
            searcher.query(db, text='x', top_k=1, backend='faiss')
            shutil.copytree(db / 'index', root / 'index', dirs_exist_ok=True)
            hits = searcher.query(root, text='x', top_k=10 ** 6, backend='faiss')
            assert len(hits) == len(archive) and {h.scene for h in hits} == {str(scene),
                                                                               str(other)}
            assert len(list((root / 'index').glob('faiss-*.index'))) == 1

    def test_uint16_fixed_stretch_equals_uint8(self, tmp_path, searcher, db) -> None:
        img16 = make_pixels().astype(np.uint16) * 257
        path = write_scene(tmp_path / 'scene16.tif', img16)
        searcher.index([path], tmp_path / 'db16', tile=TILE, batch=3, chunk_tiles=5,
                       stretch='fixed:0,65535')
        a16, a8 = TileArchive.open(tmp_path / 'db16'), TileArchive.open(db)
        np.testing.assert_allclose(all_embeddings(a16), all_embeddings(a8), atol=1e-3)

    def test_uint16_percentile_stretch_recorded(self, tmp_path, searcher) -> None:
        img16 = (make_pixels().astype(np.uint16) * 40)
        path = write_scene(tmp_path / 'scene16.tif', img16)
        searcher.index([path], tmp_path / 'db', tile=TILE, batch=4, chunk_tiles=50)
        (scene,) = TileArchive.open(tmp_path / 'db').scenes
        valid = img16[:, (img16 != 0).any(axis=0)].astype(np.float64)
        assert scene['stretch']['kind'] == 'fixed' and scene['dtype'] == 'uint16'
        np.testing.assert_allclose(scene['stretch']['low'], np.percentile(valid, 2, axis=1))
        np.testing.assert_allclose(scene['stretch']['high'], np.percentile(valid, 98, axis=1))
        stretched = Stretch('fixed', tuple(scene['stretch']['low']),
                            tuple(scene['stretch']['high'])).apply(img16.transpose(1, 2, 0))
        assert stretched.min() == 0 and stretched.max() == 255

    def test_real_landsat_scene_with_collar(self, tmp_path, searcher,
                                            geotiff_samples_root) -> None:
        path = geotiff_samples_root / 'RGB.byte.tif'
        summary = searcher.index([path], tmp_path / 'db', tile=128, batch=8)
        archive = TileArchive.open(tmp_path / 'db')
        (scene,) = archive.scenes
        with rasterio.open(path) as src:
            data = src.read()
            west, south, east, north = rasterio.warp.transform_bounds(src.crs, 'EPSG:4326',
                                                                      *src.bounds)
        expected_skip = sum(
            not (data[:, y:y + 128, x:x + 128] != 0).any()
            for y in range(0, data.shape[1], 128) for x in range(0, data.shape[2], 128))
        assert expected_skip > 0  # the collar's corners
        assert scene['skipped_nodata'] == summary.skipped_nodata == expected_skip
        assert scene['crs_name'] == 'EPSG:32618'
        for rec in all_records(archive):
            w, s, e, n = rec['lonlat_bounds']
            assert west - 1e-4 <= w < e <= east + 1e-4 and south - 1e-4 <= s < n <= north + 1e-4

    def test_alpha_band_is_the_validity_mask(self, tmp_path, searcher,
                                             geotiff_samples_root) -> None:
        """RGBA.byte.tif (same Landsat scene, collar in an alpha band, no nodata tag): the
        alpha band is left out of the bands and skips the tiles its zeros cover."""
        path = geotiff_samples_root / 'RGBA.byte.tif'
        searcher.index([path], tmp_path / 'db', tile=128, batch=8)
        archive = TileArchive.open(tmp_path / 'db')
        (scene,) = archive.scenes
        assert scene['bands'] == [1, 2, 3] and scene['nodata'] is None
        with rasterio.open(path) as src:
            alpha = src.read(4)
        expected = sorted([y // 128, x // 128] for y in range(0, alpha.shape[0], 128)
                          for x in range(0, alpha.shape[1], 128)
                          if not alpha[y:y + 128, x:x + 128].any())
        skipped = sorted(t for k in range(scene['num_chunks'])
                         for t in archive.read_chunk(scene['id'], k)['skipped_nodata'])
        assert skipped == expected and len(expected) > 0
        for rec in all_records(archive):
            y, x, h, w = rec['window']
            assert rec['valid_fraction'] == pytest.approx(
                (alpha[y:y + h, x:x + w] > 0).mean(), abs=1e-6)

    def test_real_custom_wkt_pieces(self, tmp_path, searcher, geotiff_samples_root) -> None:
        paths = [geotiff_samples_root / f'rgb{i}.tif' for i in (1, 2)]
        summary = searcher.index(paths, tmp_path / 'db', tile=128, batch=8)
        assert summary.scenes_indexed == [str(p) for p in paths]
        archive = TileArchive.open(tmp_path / 'db')
        assert all(s['crs_name'].startswith(('PROJCS', 'PROJCRS', 'EPSG:')) for s in
                   archive.scenes)
        lons = [r['lonlat_bounds'][0] for r in all_records(archive)]
        assert all(-80 < v < -75 for v in lons)  # UTM 18N, Landsat 7 scene near the coast


class TestBadInputs:
    def test_unreadable_scene_named_before_any_work(self, tmp_path, searcher, scene) -> None:
        bad = tmp_path / 'broken.tif'
        bad.write_bytes(b'II*\x00 not really a tiff')
        with pytest.raises(OSError, match='broken.tif'):
            searcher.index([scene, bad], tmp_path / 'db', tile=TILE)
        with pytest.raises(FileNotFoundError, match='missing.tif'):
            searcher.index([tmp_path / 'missing.tif'], tmp_path / 'db', tile=TILE)
        assert not (tmp_path / 'db').exists()

    def test_scene_without_crs_refused(self, tmp_path, searcher, geotiff_samples_root) -> None:
        with pytest.raises(ValueError, match='no CRS'):
            searcher.index([geotiff_samples_root / 'rotated.tif'], tmp_path / 'db')

    def test_all_nodata_scene(self, tmp_path, searcher, geotiff_samples_root) -> None:
        summary = searcher.index([geotiff_samples_root / 'all-nodata.tif'], tmp_path / 'db',
                                 bands='1,2,3', tile=64, batch=8)
        archive = TileArchive.open(tmp_path / 'db')
        assert len(archive) == 0 and summary.embedded == 0
        assert archive.scenes[0]['skipped_nodata'] == archive.scenes[0]['num_tiles'] > 0

    def test_other_model_refused(self, tmp_path, db, scene) -> None:
        root = tmp_path / 'db'
        shutil.copytree(db, root)
        other = CLIPArchiveSearch(encoder=CLIPTileEncoder(
            tiny_clip(seed=1), model_cfg=dict(type='CLIP', model_cfg=TINY)))
        with pytest.raises(ModelMismatchError, match='weights hash'):
            other.index([scene], root, tile=TILE)
        with pytest.raises(ModelMismatchError, match='weights hash'):
            other.query(root, text='a field')
        # the same weights built from a training config (loss, tuning) are the same model
        same = CLIPArchiveSearch(encoder=CLIPTileEncoder(tiny_clip(seed=0), model_cfg=dict(
            type='CLIP', model_cfg=TINY, loss=dict(type='CLIPContrastiveLoss'),
            tuning=dict(freeze='image'))))
        assert len(same.query(root, text='a field', top_k=2)) == 2
        wide = CLIPArchiveSearch(encoder=CLIPTileEncoder(
            tiny_clip(embed_dim=24), model_cfg=dict(type='CLIP', model_cfg=TINY)))
        with pytest.raises(ModelMismatchError, match='embedding dim 16 vs 24'):
            wide.query(root, text='a field')

    def test_folder_that_is_not_an_archive(self, tmp_path, searcher, scene) -> None:
        (tmp_path / 'stuff').mkdir()
        (tmp_path / 'stuff' / 'notes.txt').write_text('mine')
        with pytest.raises(ArchiveError, match='not a CLIP tile archive'):
            searcher.index([scene], tmp_path / 'stuff', tile=TILE)
        with pytest.raises(FileNotFoundError, match='not a CLIP tile archive'):
            TileArchive.open(tmp_path / 'stuff')

    def test_bad_queries(self, tmp_path, searcher, db) -> None:
        for text in ('', '   '):
            with pytest.raises(ValueError, match='query text is empty'):
                searcher.query(db, text=text)
        with pytest.raises(ValueError, match='exactly one'):
            searcher.query(db)
        with pytest.raises(ValueError, match='top-k'):
            searcher.query(db, text='x', top_k=0)
        for bad in ('gamma:2', 'percentile:50,10', 'fixed:5,1', 'fixed:a'):
            with pytest.raises(ValueError, match='stretch'):
                Stretch.parse(bad)
        assert Stretch.parse('fixed:3000') == Stretch('fixed', (0.0,), (3000.0,))
        assert Stretch.parse(' Percentile:1,99 ') == Stretch('percentile', (1.0,), (99.0,))
        assert Stretch.parse(None) == Stretch('auto')


class TestQuery:
    def test_text_query_ranks_by_cosine(self, searcher, encoder, db) -> None:
        archive = TileArchive.open(db)
        hits = searcher.query(db, text='a river next to farmland', top_k=5, backend='numpy')
        q = encoder.encode_text('a river next to farmland')
        scores = all_embeddings(archive) @ q
        order = np.argsort(-scores, kind='stable')[:5]
        records = all_records(archive)
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert [list(h.window) for h in hits] == [records[i]['window'] for i in order]
        np.testing.assert_allclose([h.score for h in hits], scores[order], atol=1e-5)
        top = searcher.query(db, text='a river next to farmland', top_k=10 ** 6)
        assert len(top) == len(archive)  # k larger than the archive: everything, sorted
        assert all(a.score >= b.score for a, b in zip(top, top[1:]))

    def test_image_query_finds_its_own_tile(self, tmp_path, searcher, db) -> None:
        import cv2
        archive = TileArchive.open(db)
        rec = next(r for r in all_records(archive)
                   if r['valid_fraction'] == 1 and r['window'][2:] == [TILE, TILE])
        y, x, h, w = rec['window']
        crop = make_pixels()[:, y:y + h, x:x + w].transpose(1, 2, 0)
        cv2.imwrite(str(tmp_path / 'crop.png'), crop[..., ::-1])  # PNG stores RGB; cv2 BGR
        hits = searcher.query(db, image=tmp_path / 'crop.png', top_k=3)
        assert list(hits[0].window) == rec['window']
        assert hits[0].score > 0.999

    def test_real_image_query_geojson(self, tmp_path, searcher, db) -> None:
        image = VL / 'RemoteCLIP' / 'assets' / 'airport.jpg'
        if not image.is_file():
            pytest.skip(f'{image} not found (shared sample data)')
        out = tmp_path / 'hits.geojson'
        hits = searcher.query(db, image=image, top_k=4, out=out)
        doc = json.loads(out.read_text())
        assert doc['type'] == 'FeatureCollection' and 'crs' not in doc
        assert len(doc['features']) == 4
        archive = TileArchive.open(db)
        by_window = {tuple(r['window']): r for r in all_records(archive)}
        for hit, feat in zip(hits, doc['features']):
            props = feat['properties']
            assert set(props) >= {'score', 'rank', 'scene', 'window', 'crs'}
            assert props['rank'] == hit.rank and props['crs'] == 'EPSG:32632'
            assert props['score'] == pytest.approx(hit.score)
            window = tuple(int(v) for v in props['window'].split(','))
            y, x, h, w = window
            left, bottom, right, top = window_bounds(Window(x, y, w, h), PROFILE['transform'])
            lon, lat = warp_transform('EPSG:32632', 'EPSG:4326', [left, right, right, left],
                                      [top, top, bottom, bottom])
            ring = np.array(feat['geometry']['coordinates'][0])
            np.testing.assert_allclose(ring.min(axis=0), [min(lon), min(lat)], atol=1e-4)
            np.testing.assert_allclose(ring.max(axis=0), [max(lon), max(lat)], atol=1e-4)
            assert window in by_window
        with pytest.raises(FileExistsError):
            searcher.query(db, image=image, top_k=4, out=out)
        searcher.query(db, text='x', top_k=2, out=out, overwrite=True)
        assert len(json.loads(out.read_text())['features']) == 2


def synthetic_archive(root: Path, n: int, dim: int, chunk: int, seed: int = 0) -> TileArchive:
    """An archive of ``n`` random unit vectors (no model), one scene."""
    ident = ModelIdentity(dim=dim, config_hash='c', weights_hash='w', preprocessing={})
    archive = TileArchive.open_or_create(root, ident, dtype='float32')
    rng = np.random.default_rng(seed)
    scene = archive.begin_scene(dict(id='s', path='synthetic', fingerprint={}))
    rows = []
    for k, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        v = rng.normal(size=(m, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        archive.write_chunk(scene['id'], k, v, [dict(i=start + i) for i in range(m)], {})
        rows.append(m)
    archive.finish_scene('s', dict(chunk_rows=rows))
    return archive


class TestBackends:
    def test_numpy_streaming_equals_brute_force(self, tmp_path) -> None:
        archive = synthetic_archive(tmp_path / 'db', 1000, 32, chunk=64)
        rng = np.random.default_rng(1)
        q = rng.normal(size=(3, 32)).astype(np.float32)
        scores, rows = search(archive, q, k=7, backend='numpy')
        full = all_embeddings(archive) @ q.T
        for j in range(3):
            ref = np.argsort(-full[:, j], kind='stable')[:7]
            np.testing.assert_array_equal(rows[j], ref)
            np.testing.assert_allclose(scores[j], full[ref, j], rtol=1e-5)
        assert [loc.record['i'] for loc in archive.locate(rows[0])] == list(rows[0])

    @pytest.mark.skipif(not faiss_available(), reason='faiss not installed (pip install '
                        'faiss-cpu)')
    def test_faiss_equals_numpy(self, tmp_path) -> None:
        archive = synthetic_archive(tmp_path / 'db', 3000, 64, chunk=256)
        q = np.random.default_rng(2).normal(size=(5, 64)).astype(np.float32)
        s_np, r_np = search(archive, q, k=20, backend='numpy')
        s_fa, r_fa = search(archive, q, k=20, backend='faiss')
        np.testing.assert_array_equal(r_np, r_fa)
        np.testing.assert_allclose(s_np, s_fa, rtol=1e-5, atol=1e-6)
        cached = list((tmp_path / 'db' / 'index').glob('faiss-*.index'))
        assert len(cached) == 1
        s2, r2 = search(archive, q, k=20, backend='faiss')  # from the cache
        np.testing.assert_array_equal(r2, r_np)

    @pytest.mark.skipif(not faiss_available(), reason='faiss not installed')
    def test_faiss_equals_numpy_on_tile_archive(self, searcher, db) -> None:
        a = searcher.query(db, text='harbour', top_k=6, backend='numpy')
        b = searcher.query(db, text='harbour', top_k=6, backend='faiss')
        assert [h.window for h in a] == [h.window for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
