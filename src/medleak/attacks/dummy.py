"""The attacker's side of the client computation: dummy images in, dummy update out."""

from __future__ import annotations

from collections.abc import Callable

import torch

from medleak.attacks.base import Progress, ServerKnowledge
from medleak.attacks.options import CommonOptions
from medleak.errors import ConfigError, MedleakError
from medleak.fl import FLSettings, Update, client_update_tensors, parameters_of
from medleak.models import to_model_input

LossOf = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


def seeded_uniform(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Uniform [0, 1) noise from a private generator: the same seed always gives the same start."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator)


def reconstruction_channels(knowledge: ServerKnowledge, options: CommonOptions) -> int:
    """One channel for gray-aware attacks; every model channel for the ROG reference behaviour."""
    return 1 if options.reconstruct_channels == "gray" else knowledge.channels


def labels_for(knowledge: ServerKnowledge, options: CommonOptions) -> torch.Tensor:
    """The labels the attacker uses; only the label oracle exists for now."""
    if knowledge.true_labels is None:
        raise MedleakError("labels 'known' needs the true labels, but the server was given none")
    return knowledge.true_labels


def check_update_fits(update: Update, knowledge: ServerKnowledge) -> None:
    """Refuse an update that cannot come from this model, or that holds NaN/inf."""
    params = parameters_of(knowledge.model)
    for name, tensor in update.tensors.items():
        if name not in params:
            raise MedleakError(f"update tensor {name!r} is not a parameter of the model")
        if tensor.shape != params[name].shape:
            raise MedleakError(
                f"update tensor {name!r} has shape {tuple(tensor.shape)}, "
                f"the model's parameter has {tuple(params[name].shape)}"
            )
    update.check_finite()


def dummy_update(
    knowledge: ServerKnowledge,
    params: dict[str, torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    update: Update,
    first_order: bool = False,
) -> dict[str, torch.Tensor]:
    """The update the client would have sent for ``images``, differentiable w.r.t. the images.

    FedAvg is unrolled through all tau local steps, unless ``first_order``: then its
    pseudo-gradient, the sum of the tau step gradients, is modelled as tau times the gradient at
    the sent weights, exact to O(lr * tau) and tau times cheaper (``options.fedavg_model``).
    """
    inputs = to_model_input(images, knowledge.channels)
    if first_order and update.fl.steps > 1:
        single = client_update_tensors(
            knowledge.model, params, inputs, labels, FLSettings(), create_graph=True
        )
        return {n: update.fl.steps * g for n, g in single.items()}
    return client_update_tensors(
        knowledge.model, params, inputs, labels, update.fl, create_graph=True
    )


def trainable_params(knowledge: ServerKnowledge) -> dict[str, torch.Tensor]:
    """Fresh leaf copies of the weights the server sent, so higher-order gradients can flow."""
    return {n: p.clone().requires_grad_(True) for n, p in parameters_of(knowledge.model).items()}


def check_image_size(knowledge: ServerKnowledge, scale_factor: int) -> None:
    if knowledge.image_size % scale_factor:
        raise ConfigError(
            f"image size {knowledge.image_size} is not divisible by scale factor {scale_factor}"
        )


def report(progress: Progress | None, iteration: int, loss: float) -> None:
    if progress is not None:
        progress(iteration, loss)
