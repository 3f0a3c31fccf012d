"""All-or-nothing outputs (:mod:`mmrs.geo.atomic`)."""
import os
import sqlite3
from pathlib import Path

import pytest

from mmrs.geo.atomic import OutputAppearedError, atomic_output, check_outputs


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class TestAtomicOutput:

    def test_success_moves_into_place(self, tmp_path: Path) -> None:
        target = tmp_path / 'change.tif'
        with atomic_output(target) as tmp:
            assert tmp.name == 'change.tif' and tmp.parent.parent == tmp_path
            assert not tmp.exists()  # drivers get a fresh path
            tmp.write_bytes(b'data')
            assert not target.exists()  # nothing visible before the block ends
        assert target.read_bytes() == b'data'
        assert leftovers(tmp_path) == ['change.tif']

    def test_existing_output_refused_before_the_body_runs(self, tmp_path: Path) -> None:
        target = tmp_path / 'change.tif'
        target.write_bytes(b'old')
        ran = []
        with pytest.raises(FileExistsError, match='change.tif.*overwrite'):
            with atomic_output(target):
                ran.append(True)
        assert ran == [] and target.read_bytes() == b'old'

    def test_overwrite_replaces_and_drops_stale_sidecars(self, tmp_path: Path) -> None:
        target = tmp_path / 'change.gpkg'
        target.write_bytes(b'old')
        (tmp_path / 'change.gpkg-wal').write_bytes(b'stale journal of the old file')
        with atomic_output(target, overwrite=True) as tmp:
            tmp.write_bytes(b'new')
        assert target.read_bytes() == b'new'
        assert leftovers(tmp_path) == ['change.gpkg']

    @pytest.mark.parametrize('error', [RuntimeError, KeyboardInterrupt])
    def test_exception_leaves_nothing(self, tmp_path: Path, error: type) -> None:
        target = tmp_path / 'change.tif'
        with pytest.raises(error):
            with atomic_output(target) as tmp:
                tmp.write_bytes(b'half written')
                tmp.with_name('change.tif.aux.xml').write_text('<PAMDataset/>')
                raise error('stop')
        assert leftovers(tmp_path) == []

    def test_exception_keeps_the_old_output_when_overwriting(self, tmp_path: Path) -> None:
        target = tmp_path / 'change.tif'
        target.write_bytes(b'old')
        with pytest.raises(KeyboardInterrupt):
            with atomic_output(target, overwrite=True) as tmp:
                tmp.write_bytes(b'half')
                raise KeyboardInterrupt
        assert target.read_bytes() == b'old'
        assert leftovers(tmp_path) == ['change.tif']

    def test_multi_file_output_moves_every_file(self, tmp_path: Path) -> None:
        target = tmp_path / 'out' / 'nested' / 'polygons.shp'  # parents are created
        with atomic_output(target) as tmp:
            for suffix in ('.shp', '.shx', '.dbf', '.prj'):
                tmp.with_suffix(suffix).write_text(suffix)
        assert leftovers(target.parent) == ['polygons.dbf', 'polygons.prj', 'polygons.shp',
                                            'polygons.shx']
        assert (target.parent / 'polygons.dbf').read_text() == '.dbf'

    def test_sqlite_database_with_journal(self, tmp_path: Path) -> None:
        """A real SQLite file (what a GeoPackage is) written in WAL mode arrives complete."""
        target = tmp_path / 'db.gpkg'
        with atomic_output(target) as tmp:
            con = sqlite3.connect(tmp)
            con.execute('PRAGMA journal_mode=WAL')
            con.execute('CREATE TABLE t (x INTEGER)')
            con.executemany('INSERT INTO t VALUES (?)', [(i, ) for i in range(100)])
            con.commit()
            con.close()
        assert leftovers(tmp_path) == ['db.gpkg']
        with sqlite3.connect(target) as con:
            assert con.execute('SELECT COUNT(*) FROM t').fetchone() == (100, )

    def test_nothing_written_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match='nothing was written'):
            with atomic_output(tmp_path / 'change.tif'):
                pass
        assert leftovers(tmp_path) == []

    def test_output_appearing_meanwhile_is_not_clobbered(self, tmp_path: Path) -> None:
        target = tmp_path / 'change.tif'
        with pytest.raises(OutputAppearedError, match='kept as') as info:
            with atomic_output(target) as tmp:
                tmp.write_bytes(b'an hour of work')
                target.write_bytes(b'someone else')
        assert target.read_bytes() == b'someone else'
        kept = Path(str(info.value).rsplit('kept as ', 1)[1])
        assert kept.read_bytes() == b'an hour of work'


class TestCheckOutputs:

    def test_second_existing_output_refused_up_front(self, tmp_path: Path) -> None:
        (tmp_path / 'change.gpkg').write_bytes(b'old')
        with pytest.raises(FileExistsError, match='change.gpkg'):
            check_outputs([tmp_path / 'change.tif', tmp_path / 'change.gpkg'])
        paths = check_outputs([tmp_path / 'change.tif', tmp_path / 'change.gpkg'],
                              overwrite=True)
        assert paths == [tmp_path / 'change.tif', tmp_path / 'change.gpkg']

    def test_bad_targets(self, tmp_path: Path) -> None:
        (tmp_path / 'folder').mkdir()
        (tmp_path / 'file').write_text('x')
        with pytest.raises(IsADirectoryError, match='folder'):
            check_outputs([tmp_path / 'folder'], overwrite=True)
        with pytest.raises(NotADirectoryError, match='is a file'):
            check_outputs([tmp_path / 'file' / 'change.tif'])
        with pytest.raises(ValueError, match='twice'):
            check_outputs([tmp_path / 'a.tif', tmp_path / 'sub' / '..' / 'a.tif'])

    @pytest.mark.skipif(os.name != 'posix' or os.geteuid() == 0,
                        reason='needs POSIX permissions and a non-root user')
    def test_unwritable_folder(self, tmp_path: Path) -> None:
        locked = tmp_path / 'locked'
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(PermissionError, match='not writable'):
                check_outputs([locked / 'change.tif'])
        finally:
            locked.chmod(0o700)
