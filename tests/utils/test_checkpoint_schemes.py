"""Every checkpoint scheme (URLs, torchvision://, open-mmlab://, mmcls://, init_cfg Pretrained)
goes through the safe loader: a hostile file in torch's hub cache is never unpickled.

No network: the files are placed in a temporary ``TORCH_HOME`` hub cache under the name
torch derives from the URL, and downloading is made to fail the test.
"""
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from mmengine.model import BaseModule
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import (CheckpointLoader, get_external_models,
                                        get_mmcls_models, get_torchvision_models,
                                        load_checkpoint)
from torch import nn

import mmrs  # noqa: F401  (installs the policy)
from mmrs.utils.checkpoint import (ENV_FLAG, UnsafeCheckpointError, allow_unsafe_checkpoints,
                                   safe_load_url)


class Payload:
    """Unpickling this creates a file: a stand-in for code an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def resolved_url(name: str) -> str:
    """The http(s) URL mmengine fetches for a scheme name (its own tables, no network)."""
    if name.startswith(('torchvision://', 'modelzoo://')):
        return get_torchvision_models()[name.split('://', 1)[1]]
    if name.startswith(('open-mmlab://', 'openmmlab://')):
        return get_external_models()[name.split('://', 1)[1]]
    if name.startswith('mmcls://'):
        return get_mmcls_models()[name.split('://', 1)[1]]
    return name


NAMES = ['https://example.invalid/weights/evil-1234abcd.pth',
         'http://example.invalid/weights/evil.pth',
         'torchvision://resnet18', 'modelzoo://resnet18',
         'open-mmlab://vgg16_caffe', 'openmmlab://vgg16_caffe', 'mmcls://vgg11']


@pytest.fixture
def hub(tmp_path: Path, monkeypatch) -> Path:
    """An empty torch hub cache in tmp_path; any download attempt fails the test."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine'))
    monkeypatch.delenv(ENV_FLAG, raising=False)
    monkeypatch.setattr(torch.hub, '_hub_dir', None)

    def no_network(url, *args, **kwargs):
        raise AssertionError(f'tried to download {url}')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_network)
    folder = tmp_path / 'torch' / 'hub' / 'checkpoints'
    folder.mkdir(parents=True)
    return folder


def cache(hub: Path, name: str, obj) -> Path:
    url = resolved_url(name)
    path = hub / url.rsplit('/', 1)[1]
    torch.save(obj, path)
    return path


def hostile(hub: Path, name: str, tmp_path: Path) -> Path:
    marker = tmp_path / 'payload_ran'
    cache(hub, name, {'state_dict': OrderedDict(), 'meta': Payload(marker)})
    return marker


def benign_state(name: str) -> tuple[nn.Linear, dict]:
    torch.manual_seed(0)
    source = nn.Linear(3, 2)
    prefix = 'backbone.' if name.startswith('mmcls://') else ''  # mmcls:// keeps backbone.*
    state = OrderedDict((prefix + k, v) for k, v in source.state_dict().items())
    return source, {'state_dict': state, 'meta': {'epoch': 1}}


@pytest.mark.parametrize('name', NAMES)
class TestEverySchemeIsSafe:

    def test_hostile_cached_file_is_refused(self, hub, tmp_path, name) -> None:
        marker = hostile(hub, name, tmp_path)
        with pytest.raises(UnsafeCheckpointError, match='cached at'):
            CheckpointLoader.load_checkpoint(name, map_location='cpu')
        with pytest.raises(UnsafeCheckpointError):
            load_checkpoint(nn.Linear(3, 2), name, map_location='cpu')
        assert not marker.exists(), 'the hostile file was unpickled'

    def test_hostile_file_through_init_cfg_pretrained(self, hub, tmp_path, name) -> None:
        marker = hostile(hub, name, tmp_path)

        class Net(BaseModule):
            def __init__(self) -> None:
                super().__init__(init_cfg=dict(type='Pretrained', checkpoint=name))
                self.fc = nn.Linear(3, 2)

        with pytest.raises(UnsafeCheckpointError):
            Net().init_weights()
        assert not marker.exists()

    def test_benign_cached_file_loads(self, hub, name) -> None:
        source, checkpoint = benign_state(name)
        cache(hub, name, checkpoint)
        target = nn.Linear(3, 2)
        load_checkpoint(target, name, map_location='cpu', strict=True)
        for key, value in source.state_dict().items():
            assert torch.equal(target.state_dict()[key], value), key

    def test_opt_in_behaves_as_for_local_files(self, hub, tmp_path, name) -> None:
        marker = hostile(hub, name, tmp_path)
        with allow_unsafe_checkpoints():
            CheckpointLoader.load_checkpoint(name, map_location='cpu')
        assert marker.exists()


def test_environment_opt_in(hub, tmp_path, monkeypatch) -> None:
    marker = hostile(hub, NAMES[0], tmp_path)
    monkeypatch.setenv(ENV_FLAG, '1')
    CheckpointLoader.load_checkpoint(NAMES[0], map_location='cpu')
    assert marker.exists()


def test_weights_only_true_wins_over_opt_in(hub, tmp_path) -> None:
    marker = hostile(hub, NAMES[0], tmp_path)
    with allow_unsafe_checkpoints(), pytest.raises(UnsafeCheckpointError):
        safe_load_url(NAMES[0], weights_only=True)
    assert not marker.exists()


def test_pretrained_init_loads_benign_weights(hub) -> None:
    torch.manual_seed(1)
    source = nn.Linear(3, 2)
    url = 'https://example.invalid/weights/fc.pth'
    cache(hub, url, {'state_dict': OrderedDict(('fc.' + k, v)
                                               for k, v in source.state_dict().items())})

    class Net(BaseModule):
        def __init__(self) -> None:
            super().__init__(init_cfg=dict(type='Pretrained', checkpoint=url))
            self.fc = nn.Linear(3, 2)

    net = Net()
    net.init_weights()
    assert torch.equal(net.fc.weight, source.weight)


def test_every_registered_scheme_reads_through_the_policy() -> None:
    """A scheme that reads files some other way (a new mmengine, another library) fails here.

    Each loader must reach a file only through the two functions mmrs replaced
    (``_safe_torch_load``, ``load_url``) or through ``load_from_http`` (which uses
    ``load_url``), never by calling ``torch.load`` or torch's hub loader itself.
    """
    assert mmengine_checkpoint._safe_torch_load.__module__ == 'mmrs.utils.checkpoint'
    assert mmengine_checkpoint.load_url is safe_load_url
    choke_points = {'_safe_torch_load', 'load_url', 'load_from_http'}
    for prefix, loader in CheckpointLoader._schemes.items():
        names = set(loader.__code__.co_names)
        assert loader.__module__ == 'mmengine.runner.checkpoint', (prefix, loader)
        assert names & choke_points, f'{prefix!r}: {loader.__name__} reads files unchecked'
        assert not names & {'load', 'load_state_dict_from_url'}, (prefix, loader.__name__)
