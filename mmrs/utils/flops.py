"""FLOPs and parameter counts of mmrs models, with the selective scan counted.

mmengine's :class:`~mmengine.analysis.FlopAnalyzer` traces the model with ``torch.jit.trace``
and counts the ops it has handles for (convolutions, matmuls, ``linear``, ``einsum``, norms,
...; one fused multiply-add is one FLOP, the fvcore convention VMamba reports in). The portable
selective scan (:func:`mmrs.models.layers.selective_scan`) is a graph of elementwise ops
(``exp``, ``mul``, ``addcmul``, ``sum``) that have no handle, so a plain trace counts it as
zero. The official VMamba instead runs the scan as a ``torch.autograd.Function``, which the
tracer records as one ``prim::PythonOp`` node, and counts that node with
``flops_selective_scan_fn`` (``classification/models/vmamba.py``: ``9 * B * L * D * N``, plus
``B * D * L`` for the ``D`` skip). :func:`trace_selective_scan_as_op` does the same for our scan
while a model is analysed, and :func:`selective_scan_flops` is that formula, so the counts are
comparable with the numbers VMamba and ChangeMamba publish.
"""
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    'SCAN_OP_HANDLES', 'ComplexityResult', 'analyze_complexity', 'format_count', 'input_bands',
    'build_model_from_config', 'selective_scan_flops', 'trace_selective_scan_as_op'
]


def selective_scan_flops(batch: int, channels: int, length: int, d_state: int,
                         with_d: bool = True, with_z: bool = False) -> int:
    """FLOPs of one selective scan call, by the official VMamba formula.

    ``9 * B * L * D * N`` for the recurrence and its output contraction (the count of
    state-spaces/mamba issue 110 that ``flops_selective_scan_fn`` uses), ``+ B * D * L`` for the
    ``D`` skip and ``+ B * D * L`` for a ``z`` gate.

    Args:
        batch: ``B``.
        channels: ``D``: all scanned channels (``KD``: directions x ``d_inner`` for SS2D).
        length: ``L``, positions per sequence.
        d_state: ``N``, state size per channel.
        with_d: Whether the ``D`` skip is applied.
        with_z: Whether a multiplicative gate is applied inside the scan (mmrs never does).
    """
    flops = 9 * batch * length * channels * d_state
    if with_d:
        flops += batch * channels * length
    if with_z:
        flops += batch * channels * length
    return flops


def _make_scan_op(name: str) -> type[torch.autograd.Function]:
    """An autograd Function named ``name`` that runs the scan: one node in a jit trace."""

    def forward(ctx: Any, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                D: Tensor | None, delta_bias: Tensor | None, delta_softplus: bool,
                backend: str, chunk_size: int) -> Tensor:
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias)
        ctx.options = (delta_softplus, backend, chunk_size)
        return _ORIGINAL_SCAN[0](u, delta, A, B, C, D, delta_bias, delta_softplus,
                                 backend=backend, chunk_size=chunk_size)

    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        # Recompute through the plain ops: the Function only exists to be one traced node.
        saved = ctx.saved_tensors
        leaves = [t.detach().requires_grad_(t.requires_grad) if t is not None else None
                  for t in saved]
        delta_softplus, backend, chunk_size = ctx.options
        with torch.enable_grad():
            out = _ORIGINAL_SCAN[0](*leaves, delta_softplus, backend=backend,
                                    chunk_size=chunk_size)
            wanted = [t for t in leaves if t is not None and t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, grad, allow_unused=True))
        return (*(next(grads) if t is not None and t.requires_grad else None
                  for t in leaves), None, None, None)

    return type(name, (torch.autograd.Function, ), dict(forward=staticmethod(forward),
                                                      backward=staticmethod(backward)))


#: The original :func:`~mmrs.models.layers.selective_scan` (filled on first use, so that
#: importing this module does not import the model code).
_ORIGINAL_SCAN: list = []
_SCAN_WITH_D = _make_scan_op('MmrsSelectiveScan')
_SCAN_WITHOUT_D = _make_scan_op('MmrsSelectiveScanNoD')


def _traced_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                 D: Tensor | None = None, delta_bias: Tensor | None = None,
                 delta_softplus: bool = False, *, backend: str = 'auto',
                 chunk_size: int = 64) -> Tensor:
    """``selective_scan`` routed through a named autograd Function (same arguments)."""
    op = _SCAN_WITH_D if D is not None else _SCAN_WITHOUT_D
    return op.apply(u, delta, A, B, C, D, delta_bias, delta_softplus, backend, chunk_size)


def _scan_flop_handle(with_d: bool):
    """mmengine op handle of the traced scan: the formula from the traced input shapes."""

    def handle(inputs: list, outputs: list) -> int:
        batch, channels, length = inputs[0].type().sizes()  # u: (B, KD, L)
        d_state = inputs[2].type().sizes()[1]  # A: (KD, N)
        return selective_scan_flops(batch, channels, length, d_state, with_d=with_d)

    return handle


#: Handles to pass to ``FlopAnalyzer.set_op_handle`` while :func:`trace_selective_scan_as_op`
#: is active (keys are the traced node kinds).
SCAN_OP_HANDLES = {
    'prim::PythonOp.MmrsSelectiveScan': _scan_flop_handle(with_d=True),
    'prim::PythonOp.MmrsSelectiveScanNoD': _scan_flop_handle(with_d=False),
}


@contextmanager
def trace_selective_scan_as_op() -> Iterator[None]:
    """Within the block, every call of ``selective_scan`` is one autograd-Function node.

    The numbers are unchanged (the Function runs the same scan, and its backward recomputes
    through it). Only meant around a FLOP trace: it rebinds the name ``selective_scan`` in the
    modules that imported it (``from mmrs.models.layers import selective_scan``), since the call
    sites hold their own reference, and restores them on exit.
    """
    from mmrs.models.layers import selective_scan as original
    if not _ORIGINAL_SCAN:
        _ORIGINAL_SCAN.append(original)
    rebound = []
    for module in list(sys.modules.values()):
        namespace = getattr(module, '__dict__', None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            if value is original:
                namespace[attr] = _traced_scan
                rebound.append((namespace, attr))
    try:
        yield
    finally:
        for namespace, attr in rebound:
            namespace[attr] = original


@dataclass
class ComplexityResult:
    """What :func:`analyze_complexity` measured.

    Attributes:
        flops: Total FLOPs (multiply-adds) of one forward pass on the given inputs.
        params: Number of parameters (shared ones counted once).
        scan_flops: The part of ``flops`` from selective scans (0 if not counted).
        by_operator: FLOPs per op kind (``conv``, ``linear``, ``PythonOp.MmrsSelectiveScan``...).
        by_module: FLOPs of each top-level submodule.
        uncounted_ops: Traced op kinds without a FLOP handle, with how often they ran
            (elementwise ops such as ``aten::add``; counted as zero, as in fvcore and VMamba).
        table: mmengine's per-module table of FLOPs and parameters.
    """
    flops: int
    params: int
    scan_flops: int
    by_operator: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    table: str = ''


def analyze_complexity(model: nn.Module, inputs: tuple, count_scan: bool = True,
                       max_depth: int = 2) -> ComplexityResult:
    """Count the FLOPs and parameters of ``model(*inputs)``.

    Args:
        model: The model; traced as it is (call ``.eval()`` first for inference numbers).
        inputs: Positional arguments of ``model``.
        count_scan: Count every selective scan with :func:`selective_scan_flops`; ``False``
            leaves them at zero (what a plain mmengine / fvcore trace reports).
        max_depth: Module depth of the table.
    """
    from mmengine.analysis import FlopAnalyzer, parameter_count
    from mmengine.analysis.print_helper import complexity_stats_table

    with torch.no_grad():
        if count_scan:
            with trace_selective_scan_as_op():
                analyzer = FlopAnalyzer(model, inputs).set_op_handle(**SCAN_OP_HANDLES)
                analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
                by_operator = analyzer.by_operator()  # traced here, inside the context
        else:
            analyzer = FlopAnalyzer(model, inputs)
            analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            by_operator = analyzer.by_operator()
    by_module = analyzer.by_module()
    top_level = {name: int(by_module.get(name, 0)) for name, _ in model.named_children()}
    scan = sum(int(v) for k, v in by_operator.items() if k.startswith('PythonOp.MmrsSelective'))
    return ComplexityResult(
        flops=int(analyzer.total()),
        params=int(parameter_count(model)['']),
        scan_flops=scan,
        by_operator={k: int(v) for k, v in by_operator.items()},
        by_module=top_level,
        uncounted_ops=dict(analyzer.unsupported_ops()),
        table=complexity_stats_table(flops=analyzer, max_depth=max_depth,
                                     show_param_shapes=False))


def format_count(value: float) -> str:
    """``15734800`` -> ``'15.73M'`` (G, M, K with two decimals)."""
    for unit, scale in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= scale:
            return f'{value / scale:.2f}{unit}'
    return str(int(value))


def input_bands(model_cfg: Any) -> int:
    """Bands per date that a change detector config expects (what the data loader provides).

    The backbone's ``in_channels`` (default 3), halved when the detector feeds both dates to the
    backbone stacked along channels (``backbone_input='concat'``).
    """
    backbone = model_cfg.get('backbone') or {}
    bands = int(backbone.get('in_channels', 3))
    return bands // 2 if model_cfg.get('backbone_input') == 'concat' else bands


def build_model_from_config(config: str, cfg_options: dict | None = None) -> tuple[Any, nn.Module]:
    """Load ``config`` (a path, ``mmrs::path`` or a shipped name), apply ``cfg_options`` and
    build its model with random weights (what the analysis tools measure).

    Raises:
        FileNotFoundError: If the config cannot be found.
        ValueError: If it has no ``model`` dict.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmrs.registry import MODELS
    from mmrs.utils.config_path import resolve_config
    from mmrs.utils.setup_env import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(resolve_config(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if not isinstance(cfg.get('model'), dict):
        raise ValueError(f'config {config!r} has no model dict')
    init_default_scope(cfg.get('default_scope', 'mmrs'))
    return cfg, MODELS.build(cfg.model)
