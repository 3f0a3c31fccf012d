"""SS2D, VMamba's 2-D selective-scan token mixer.

Liu et al., "VMamba: Visual State Space Model", NeurIPS 2024 (arXiv:2401.10166), Sec. 3 and the
``forwardv2`` path of the official ``classification/models/vmamba.py``: a linear projection, a
depthwise convolution and SiLU, then the map is unfolded into four sequences (row-major,
column-major, and both reversed; :func:`~mmrs.models.layers.cross_scan`), each direction ``k``
gets its own input-dependent ``dt``, ``B``, ``C`` (``x_proj_weight[k]``, ``dt_projs_weight[k]``),
the four sequences run through one grouped selective scan (Mamba's S6 recurrence), are folded back
and summed (:func:`~mmrs.models.layers.cross_merge`), normalised and projected out.

``forward_type`` follows the official tags: ``v2``/``v3`` (the same arithmetic; ``v2`` casts the
scan inputs to fp32 first, ``v3`` does not), the ``noz`` suffix drops the multiplicative gate
``z`` (ChangeMamba's ``v3noz``) and ``nozact`` keeps the gate without its activation.
Parameter names equal the official ones (``in_proj``, ``conv2d``, ``x_proj_weight``,
``dt_projs_weight``, ``dt_projs_bias``, ``A_logs``, ``Ds``, ``out_norm``, ``out_proj``).
"""
import math

import torch
import torch.nn as nn
from torch import Tensor

from mmrs.models.layers import cross_merge, cross_scan, selective_scan
from .layers import LayerNorm2d, Linear2d, build_act

#: Official scan-core tags with the same arithmetic (they only pick a CUDA kernel) -> force fp32.
_CORE_TYPES = {'v01': True, 'v1': True, 'v2': True, 'v3': False, 'v4': False}
_NUM_DIRECTIONS = 4


def parse_forward_type(forward_type: str) -> tuple[bool, bool, bool]:
    """Split an official ``forward_type`` tag into ``(force_fp32, use_z, z_act)``.

    The suffixes are stripped in the official order: ``no32`` (keep the input dtype), then
    ``noz`` (no gate), then ``nozact`` (gate without activation).

    Raises:
        ValueError: For tags whose arithmetic is not implemented (the ``none``/``softmax``/
            ``sigmoid``/``dwconv3`` output norms, the 1- and 2-direction ablations, ``v0``/``xv``).
    """
    tag = forward_type
    no32 = tag.endswith('no32')
    tag = tag[:-len('no32')] if no32 else tag
    noz = tag.endswith('noz')
    tag = tag[:-len('noz')] if noz else tag
    nozact = tag.endswith('nozact')
    tag = tag[:-len('nozact')] if nozact else tag
    if tag not in _CORE_TYPES:
        raise ValueError(f'unsupported SS2D forward_type {forward_type!r}: the core must be one of '
                         f'{sorted(_CORE_TYPES)} with optional suffixes noz/nozact/no32')
    return _CORE_TYPES[tag] and not no32, not noz, not nozact


class SS2D(nn.Module):
    """The 2-D selective-scan mixer of one VMamba block.

    Args:
        d_model: Input and output channels.
        d_state: SSM state size ``N`` per channel.
        ssm_ratio: Expansion ``d_inner = int(ssm_ratio * d_model)``.
        dt_rank: Rank of the low-rank ``dt`` projection; ``'auto'`` is ``ceil(d_model / 16)``.
        act: Activation after the depthwise conv (and of the gate).
        d_conv: Depthwise conv kernel; ``< 2`` disables the conv.
        conv_bias: Whether the depthwise conv has a bias.
        dropout: Dropout after ``out_proj``.
        forward_type: Official tag, see :func:`parse_forward_type`.
        channel_first: Inputs/outputs are ``(B, C, H, W)`` instead of ``(B, H, W, C)``.
        dt_min: Smallest initial step ``softplus(dt_bias)``.
        dt_max: Largest initial step.
        dt_init_floor: Lower clamp of the initial step.
        dt_scale: Scale of the uniform ``dt_projs_weight`` init (``dt_rank ** -0.5 * dt_scale``).
        scan_backend: ``backend`` of :func:`~mmrs.models.layers.selective_scan`
            (``'auto'``, ``'torch'`` or ``'cuda'``).
        chunk_size: Chunk length of the portable scan.
    """

    def __init__(self, d_model: int, d_state: int = 16, ssm_ratio: float = 2.0,
                 dt_rank: int | str = 'auto', act: str = 'silu', d_conv: int = 3,
                 conv_bias: bool = True, dropout: float = 0.0, forward_type: str = 'v2',
                 channel_first: bool = False, dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, dt_scale: float = 1.0, scan_backend: str = 'auto',
                 chunk_size: int = 64) -> None:
        super().__init__()
        self.force_fp32, self.use_z, self.z_act = parse_forward_type(forward_type)
        self.channel_first = channel_first
        self.scan_backend = scan_backend
        self.chunk_size = chunk_size
        d_inner = int(ssm_ratio * d_model)
        self.d_inner = d_inner
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == 'auto' else int(dt_rank)
        k = _NUM_DIRECTIONS
        linear = Linear2d if channel_first else nn.Linear

        self.in_proj = linear(d_model, d_inner * (2 if self.use_z else 1), bias=False)
        self.act = build_act(act)
        self.conv2d = (nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2,
                                 groups=d_inner, bias=conv_bias) if d_conv > 1 else None)
        # Per direction: x -> (dt_low_rank, B, C), then dt_low_rank -> dt (d_inner channels).
        self.x_proj_weight = nn.Parameter(torch.empty(k, self.dt_rank + 2 * d_state, d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, d_inner, self.dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, d_inner))
        # A = -exp(A_logs) < 0 (stable decay); D is the skip ``y += D * u``.
        self.A_logs = nn.Parameter(torch.empty(k * d_inner, d_state))
        self.Ds = nn.Parameter(torch.empty(k * d_inner))
        self.out_norm = LayerNorm2d(d_inner) if channel_first else nn.LayerNorm(d_inner)
        self.out_proj = linear(d_inner, d_model, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_ssm_parameters(dt_min, dt_max, dt_init_floor, dt_scale)

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min: float = 0.001, dt_max: float = 0.1,
                             dt_init_floor: float = 1e-4, dt_scale: float = 1.0) -> None:
        """Initialise the SSM parameters as Mamba/VMamba do.

        ``x_proj_weight`` as ``nn.Linear``'s default; ``dt_projs_weight`` uniform in
        ``±dt_rank**-0.5 * dt_scale``; ``dt_projs_bias`` the inverse softplus of steps log-uniform
        in ``[dt_min, dt_max]``; ``A_logs = log(1..N)`` per channel (S4D-real); ``Ds = 1``. The
        two no-decay parameters are tagged ``_no_weight_decay`` as in the official code.
        """
        bound = 1.0 / math.sqrt(self.d_inner)  # kaiming_uniform(a=sqrt(5)) of nn.Linear
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        std = self.dt_rank ** -0.5 * dt_scale
        nn.init.uniform_(self.dt_projs_weight, -std, std)
        dt = torch.exp(torch.rand(self.dt_projs_bias.shape) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=dt_init_floor)
        self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        a = torch.arange(1, self.d_state + 1, dtype=torch.float32)
        self.A_logs.copy_(torch.log(a).expand_as(self.A_logs))
        self.Ds.fill_(1.0)
        self.A_logs._no_weight_decay = True
        self.Ds._no_weight_decay = True

    def _scan(self, x: Tensor) -> Tensor:
        """Four-direction selective scan: ``(B, d_inner, H, W)`` -> ``(B, d_inner, H*W)``."""
        b, d, h, w = x.shape
        k, n, r, length = _NUM_DIRECTIONS, self.d_state, self.dt_rank, h * w
        xs = cross_scan(x)  # (B, K, D, L)
        x_dbl = torch.einsum('bkdl,kcd->bkcl', xs, self.x_proj_weight)
        dts, bs, cs = torch.split(x_dbl, [r, n, n], dim=2)
        dts = torch.einsum('bkrl,kdr->bkdl', dts, self.dt_projs_weight)
        xs, dts = xs.reshape(b, k * d, length), dts.reshape(b, k * d, length)
        bs, cs = bs.contiguous(), cs.contiguous()
        if self.force_fp32:
            xs, dts, bs, cs = xs.float(), dts.float(), bs.float(), cs.float()
        ys = selective_scan(xs, dts, -torch.exp(self.A_logs.float()), bs, cs, self.Ds.float(),
                            self.dt_projs_bias.reshape(-1).float(), delta_softplus=True,
                            backend=self.scan_backend, chunk_size=self.chunk_size)
        return cross_merge(ys.view(b, k, d, h, w))

    def forward(self, x: Tensor) -> Tensor:
        """Mix ``(B, H, W, C)`` tokens (``(B, C, H, W)`` if ``channel_first``); same shape out."""
        x = self.in_proj(x)
        z = None
        if self.use_z:
            x, z = x.chunk(2, dim=1 if self.channel_first else -1)
            if self.z_act:
                z = self.act(z)
        if not self.channel_first:
            x = x.permute(0, 3, 1, 2).contiguous()
        if self.conv2d is not None:
            x = self.conv2d(x)
        x = self.act(x)
        b, d, h, w = x.shape
        y = self._scan(x)  # (B, D, L), fp32 from the scan
        if self.channel_first:
            y = self.out_norm(y.view(b, d, h, w))
        else:
            y = self.out_norm(y.transpose(1, 2).contiguous()).view(b, h, w, d)
        y = y.to(x.dtype)
        if z is not None:
            y = y * z
        return self.dropout(self.out_proj(y))


#: ``backend`` values of :func:`~mmrs.models.layers.selective_scan`.
SCAN_BACKENDS = ('auto', 'torch', 'cuda')


def set_scan_backend(module: nn.Module, backend: str, chunk_size: int | None = None) -> int:
    """Make every :class:`SS2D` inside ``module`` use ``backend`` (and ``chunk_size``).

    ChangeMamba models hold SS2D layers in the encoder *and* in the decoders; this sets them all
    at once, so that one knob (the ChangeMamba detectors' ``scan_backend``) decides the scan of
    the whole model. The SS2D layers read the attributes at every forward, so this also works
    on a built (or loaded) model.

    Args:
        module: Any module (a whole detector).
        backend: ``'auto'``, ``'torch'`` or ``'cuda'``.
        chunk_size: Chunk length of the portable scan; ``None`` keeps each layer's.

    Returns:
        How many SS2D layers were set.

    Raises:
        ValueError: On an unknown backend.
    """
    if backend not in SCAN_BACKENDS:
        raise ValueError(f'scan_backend must be one of {SCAN_BACKENDS}, got {backend!r}')
    count = 0
    for m in module.modules():
        if isinstance(m, SS2D):
            m.scan_backend = backend
            if chunk_size is not None:
                m.chunk_size = int(chunk_size)
            count += 1
    return count
