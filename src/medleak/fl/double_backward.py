"""Layer functions whose backward pass is cheap to differentiate a second time.

A gradient-matching attack differentiates the client's gradient with respect to the dummy images
(a double backward pass). PyTorch's generic derivatives do work there that this use never needs:

* ``_convolution_double_backward`` (the derivative of a convolution's backward) always computes
  the weight-gradient term ``conv(ggI, gO)`` when the gradient of the input-gradient is defined,
  whatever the output mask says (checked on torch 2.13): one convolution per layer whose result
  is thrown away when only the images need a gradient, through a badly shaped kernel (the batch
  becomes the channel axis) plus transposing copies.
* ReLU's (and max-pool's) backward is differentiated with respect to the saved activation too,
  which is zero almost everywhere; autograd still allocates a zero tensor per layer and adds it.
* ``linear`` multiplies by a transposed view of the weight, so its weight gradient arrives
  transposed, and when the weights depend on the images (FedAvg's later steps) the second pass
  adds weight-sized gradients in transposed memory order (slow strided adds on LeNet's 33M-entry
  layer).

Inside :func:`lean_layers`, ``conv2d``, ``linear`` and ``relu`` run as autograd Functions whose
backward is written with ordinary differentiable ops (a transposed convolution for the input
gradient, the weight-only ``convolution_backward`` for the weight gradient, matrix products in
the weight's own layout, a mask product for ReLU), so the
second backward pass runs exactly the convolutions the chain rule needs, no more, and asks the
autograd engine which gradients the current pass will use before computing them. The values are
the same functions of the same inputs; only float rounding may differ (at most by the ordering of
a sum). Everything else (BatchNorm, pooling, linear layers) keeps PyTorch's own derivatives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

Pair = tuple[int, int]


def _pair(value: int | Sequence[int]) -> Pair:
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))


def engine_needs(ctx: Any, index: int) -> bool:
    """Whether the running backward pass will use the gradient of input ``index``.

    ``ctx.needs_input_grad`` only says the input requires grad; the engine knows more: when the
    attack backpropagates to the images only, the gradient of the (leaf) weights is never used.
    A leaf inside ``torch.autograd.grad`` cannot be asked about, so the answer is then "yes".
    """
    if not ctx.needs_input_grad[index]:
        return False
    node = ctx.next_functions[index][0]
    if node is None:
        return False
    try:
        return bool(torch._C._will_engine_execute_node(node))
    except RuntimeError:
        return True


def conv2d_input_grad(
    grad_out: torch.Tensor,
    weight: torch.Tensor,
    input_shape: Sequence[int],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
) -> torch.Tensor:
    """The input gradient of a 2-d convolution, as a transposed convolution.

    Its own derivative is an ordinary convolution (and a weight gradient only when asked), unlike
    ``convolution_backward``'s, which is ``_convolution_double_backward``.
    """
    output_padding = tuple(
        input_shape[2 + d]
        - (
            (grad_out.shape[2 + d] - 1) * stride[d]
            - 2 * padding[d]
            + dilation[d] * (weight.shape[2 + d] - 1)
            + 1
        )
        for d in range(2)
    )
    return F.conv_transpose2d(
        grad_out, weight, None, stride, padding, output_padding, groups, dilation
    )


def conv2d_weight_grad(
    grad_out: torch.Tensor,
    inputs: torch.Tensor,
    weight: torch.Tensor,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
) -> torch.Tensor:
    """The weight gradient of a 2-d convolution; differentiable in ``grad_out`` and ``inputs``."""
    return torch.ops.aten.convolution_backward(
        grad_out,
        inputs,
        weight,
        None,
        list(stride),
        list(padding),
        list(dilation),
        False,
        [0, 0],
        groups,
        [False, True, False],
    )[1]


class LeanConv2d(torch.autograd.Function):
    """``F.conv2d`` without bias, with a backward pass that is cheap to differentiate again."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        inputs: torch.Tensor,
        weight: torch.Tensor,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        groups: int,
    ) -> torch.Tensor:
        ctx.save_for_backward(inputs, weight)
        ctx.conv = (stride, padding, dilation, groups)
        return F.conv2d(inputs, weight, None, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        inputs, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        grad_in = grad_weight = None
        if engine_needs(ctx, 0):
            grad_in = conv2d_input_grad(
                grad_out, weight, inputs.shape, stride, padding, dilation, groups
            )
        if engine_needs(ctx, 1):
            grad_weight = conv2d_weight_grad(
                grad_out, inputs, weight, stride, padding, dilation, groups
            )
        return grad_in, grad_weight, None, None, None, None


class LeanLinear(torch.autograd.Function):
    """``F.linear`` without bias; every gradient is computed in its tensor's own memory order."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(inputs, weight)
        return F.linear(inputs, weight)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        inputs, weight = ctx.saved_tensors
        grad_in = grad_weight = None
        if engine_needs(ctx, 0):
            grad_in = grad_out @ weight
        if engine_needs(ctx, 1):
            flat_out = grad_out.reshape(-1, grad_out.shape[-1])
            grad_weight = flat_out.t() @ inputs.reshape(-1, inputs.shape[-1])
        return grad_in, grad_weight


class LeanReLU(torch.autograd.Function):
    """ReLU whose backward is a product with a constant mask (the mask has zero derivative)."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = torch.relu(inputs)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad_out, out.detach(), 0)


def _autocast(*tensors: torch.Tensor | None) -> tuple[Any, ...]:
    """Under CPU autocast (an opt-in, e.g. bfloat16), the copies autocast would give
    ``conv2d`` / ``linear``: cast here, before the Function, its backward sees one dtype (the
    ops inside a custom backward otherwise meet float32 weights and bfloat16 gradients). Outside
    autocast: the tensors unchanged."""
    if not torch.is_autocast_enabled("cpu"):
        return tensors
    dtype = torch.get_autocast_dtype("cpu")
    return tuple(t if t is None or not t.is_floating_point() else t.to(dtype) for t in tensors)


def _lean_conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> torch.Tensor | None:
    """The lean convolution, or None where it does not apply (string padding, not 4-d)."""
    if isinstance(padding, str) or input.dim() != 4:
        return None
    input, weight, bias = _autocast(input, weight, bias)
    out = LeanConv2d.apply(input, weight, _pair(stride), _pair(padding), _pair(dilation), groups)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def _lean_linear(
    input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    input, weight, bias = _autocast(input, weight, bias)
    out = LeanLinear.apply(input, weight)
    return out if bias is None else out + bias


_CONV2D: tuple[Callable[..., Any], ...] = (F.conv2d, torch.conv2d)
_RELU: tuple[Callable[..., Any], ...] = (F.relu, torch.relu)


class _LeanLayers(TorchFunctionMode):
    def __init__(self, linear: bool) -> None:
        super().__init__()
        self.linear = linear

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _CONV2D:
            out = _lean_conv2d(*args, **kwargs)
            if out is not None:
                return out
        elif func is F.linear and self.linear:
            return _lean_linear(*args, **kwargs)
        elif func in _RELU and len(args) == 1 and not kwargs.get("inplace", False):
            return LeanReLU.apply(args[0])
        return func(*args, **kwargs)


def lean_layers(linear: bool = True) -> TorchFunctionMode:
    """Context manager: inside it, ``conv2d``, ``linear`` and ``relu`` use the functions above.

    ``linear=False`` keeps PyTorch's own linear layer: with weights that do not depend on the
    images (FedSGD) it does no wasted work, and its float rounding stays bit for bit what it was.
    Only for code that builds a graph to differentiate twice (``create_graph=True``); functorch
    transforms (``vmap``, ``grad``) are not supported by these Functions.
    """
    return _LeanLayers(linear)
