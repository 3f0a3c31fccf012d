"""Install onedl-mmcv *with its compiled ops* into the running Python, building at most once.

onedl-mmcv is published as a source distribution only. Building its ops takes 30-45 minutes
on 2 cores, so the built wheel is cached, keyed by everything that makes a wheel unusable
elsewhere: the mmcv version, the exact torch version (its C++ ABI), the Python version and
whether CUDA kernels were compiled. On a machine with a GPU a CPU-only wheel is wrong (the
ops would silently run on the CPU or fail), so there the key asks for a CUDA build.

Order of preference:
1. mmcv already installed, matching version, ops importable, right flavour: nothing to do.
2. a wheel in the cache (``$MMRS_WHEEL_CACHE``, default ``~/.cache/mmrs/wheels``);
3. a prebuilt wheel in the shared folder (``$MMRS_SHARED_WHEELS``, default
   ``<repo>/../shared/wheels``) whose folder name matches (``torch2.14.1-py311-cpu``);
4. a source build (C++20 patch for torch >= 2.10, ``--no-build-isolation`` so mmcv's
   setup.py sees torch and compiles the ops), stored in the cache for next time.

Usage: ``python tools/install/ensure_mmcv.py [--version 2.3.6] [--force-build]``
"""
import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VERSION = '2.3.6'


def log(message: str) -> None:
    print(f'[ensure_mmcv] {message}', flush=True)


def torch_info() -> tuple[str, str, bool]:
    """Return (full torch version, base version, whether a CUDA build is wanted)."""
    import torch
    full = torch.__version__
    base = full.split('+')[0]
    want_cuda = torch.cuda.is_available() and os.environ.get('MMRS_MMCV_CPU_ONLY') != '1'
    return full, base, want_cuda


def flavour(want_cuda: bool) -> str:
    if not want_cuda:
        return 'cpu'
    import torch
    return f'cu{(torch.version.cuda or "unknown").replace(".", "")}'


def cache_key(version: str, torch_full: str, want_cuda: bool) -> str:
    py = f'py{sys.version_info.major}{sys.version_info.minor}'
    safe_torch = re.sub(r'[^0-9A-Za-z.]+', '_', torch_full)
    return f'mmcv{version}-torch{safe_torch}-{py}-{flavour(want_cuda)}-{platform.machine()}'


def cache_dir() -> Path:
    default = Path.home() / '.cache' / 'mmrs' / 'wheels'
    return Path(os.environ.get('MMRS_WHEEL_CACHE', default))


def shared_dir() -> Path:
    return Path(os.environ.get('MMRS_SHARED_WHEELS', REPO_ROOT.parent / 'shared' / 'wheels'))


def installed_ok(version: str, want_cuda: bool) -> bool:
    """Whether the mmcv in this Python has the version, the ops, and CUDA kernels if wanted."""
    probe = (
        'import mmcv, torch\n'
        f'assert mmcv.__version__ == {version!r}, mmcv.__version__\n'
        'from mmcv.ops import nms_rotated, RoIAlignRotated\n'
        'b = torch.tensor([[5., 5., 4., 4., 0.], [5., 5., 4., 4., 0.1]])\n'
        's = torch.tensor([0.9, 0.8])\n'
        'nms_rotated(b, s, 0.5)\n')
    if want_cuda:
        probe += 'nms_rotated(b.cuda(), s.cuda(), 0.5)\n'
    result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ['?'])[-1]
        log(f'installed mmcv not usable: {last}')
    return result.returncode == 0


def find_wheel(folder: Path, version: str) -> Path | None:
    if not folder.is_dir():
        return None
    py = f'cp{sys.version_info.major}{sys.version_info.minor}'
    wheels = sorted(folder.glob(f'onedl_mmcv-{version}-{py}-{py}-*.whl'))
    return wheels[-1] if wheels else None


def shared_wheel(version: str, torch_base: str, want_cuda: bool) -> Path | None:
    """The shared folders are named ``torch<base>-py<XY>-<cpu|cuXYZ>``."""
    py = f'py{sys.version_info.major}{sys.version_info.minor}'
    folder = shared_dir() / f'torch{torch_base}-{py}-{flavour(want_cuda)}'
    return find_wheel(folder, version)


def pip(*args: str) -> None:
    subprocess.run([sys.executable, '-m', 'pip', *args], check=True)


def build_wheel(version: str, out: Path, want_cuda: bool) -> Path:
    """Build onedl-mmcv from its sdist with ops into ``out`` (atomically)."""
    if want_cuda and shutil.which('nvcc') is None:
        raise SystemExit('[ensure_mmcv] this machine has a GPU but no nvcc: a CUDA build of '
                         'mmcv ops needs the CUDA toolkit. Install it, or set '
                         'MMRS_MMCV_CPU_ONLY=1 to build CPU-only ops knowingly.')
    log(f'building onedl-mmcv {version} with ops ({"CUDA" if want_cuda else "CPU"}); '
        'this takes 30-45 minutes on 2 cores and happens once per machine')
    pip('install', '-q', 'setuptools>=80,<82', 'wheel', 'ninja', 'packaging')
    with tempfile.TemporaryDirectory(prefix='mmcv-build-') as tmp:
        work = Path(tmp)
        pip('download', '-q', '--no-deps', '--no-binary', ':all:',
            f'onedl-mmcv=={version}', '-d', str(work))
        sdist = next(work.glob(f'onedl_mmcv-{version}.tar.gz'))
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter='data')
        source = work / f'onedl_mmcv-{version}'
        setup_py = source / 'setup.py'
        # torch >= 2.10 headers need C++20; mmcv's setup.py asks for C++17.
        setup_py.write_text(setup_py.read_text().replace("'-std=c++17'", "'-std=c++20'"))
        env = dict(os.environ, MMCV_WITH_OPS='1', MAX_JOBS=os.environ.get(
            'MAX_JOBS', str(os.cpu_count() or 2)))
        if want_cuda:
            env['FORCE_CUDA'] = '1'
        built = work / 'dist'
        subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-build-isolation',
                        '--no-deps', '-w', str(built), str(source)], check=True, env=env)
        wheel = find_wheel(built, version)
        if wheel is None:
            raise SystemExit(f'[ensure_mmcv] the build produced no wheel in {built}')
        out.mkdir(parents=True, exist_ok=True)
        partial = out / (wheel.name + '.partial')
        shutil.copy2(wheel, partial)
        partial.rename(out / wheel.name)
        return out / wheel.name


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--version', default=DEFAULT_VERSION)
    parser.add_argument('--force-build', action='store_true')
    args = parser.parse_args()

    torch_full, torch_base, want_cuda = torch_info()
    key = cache_key(args.version, torch_full, want_cuda)
    log(f'wanted: {key}')
    if not args.force_build and installed_ok(args.version, want_cuda):
        log('already installed with working ops')
        return
    cached_folder = cache_dir() / key
    wheel = None if args.force_build else find_wheel(cached_folder, args.version)
    if wheel is not None:
        log(f'using cached wheel {wheel}')
    else:
        shared = None if args.force_build else shared_wheel(
            args.version, torch_base, want_cuda)
        if shared is not None:
            log(f'using shared prebuilt wheel {shared} (sha256 {sha256(shared)[:12]})')
            wheel = shared
        else:
            wheel = build_wheel(args.version, cached_folder, want_cuda)
            log(f'cached the built wheel at {wheel}')
    # Replace whatever mmcv is there (a same-version build without ops would otherwise count
    # as "already satisfied"), then let pip add the wheel's own dependencies (mmengine, cv2).
    pip('install', '-q', '--no-deps', '--force-reinstall', str(wheel))
    pip('install', '-q', str(wheel), 'onedl-mmengine==0.10.12')
    if not installed_ok(args.version, want_cuda):
        raise SystemExit(f'[ensure_mmcv] installed {wheel.name} but its ops do not work; '
                         f'delete {cached_folder} and run again with --force-build')
    log('mmcv ops OK')


if __name__ == '__main__':
    main()
