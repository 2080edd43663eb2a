"""``serve embedding|reranking --model NAME_OR_PATH[=SERVED_NAME] --backend B``.

Models named on the command line replace the configured ones, as TEI's and
Infinity's ``--model-id`` do: the first ``--model`` is the default model, and
the service serves exactly the models named.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.text import Text

from servicegrid.cli._serve import EXIT_FAILED
from servicegrid.models.packaged import resolve_model_path
from servicegrid.settings import Settings

__all__ = [
    "MODEL_SERVICES",
    "Backend",
    "ModelChoice",
    "apply_model_options",
    "parse_model_option",
    "with_models",
]

MODEL_SERVICES = frozenset({"embedding", "reranking"})


class Backend(enum.StrEnum):
    """What runs a model's forward pass: torch, ONNX Runtime (fp32), ONNX Runtime int8, or
    auto (ONNX Runtime fp32 on a CPU, torch on a GPU)."""

    AUTO = "auto"
    TORCH = "torch"
    ONNX = "onnx"
    ONNX_INT8 = "onnx-int8"


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """One ``--model``: where the weights are, and the name clients ask for."""

    location: str
    served_name: str


def parse_model_option(value: str) -> ModelChoice:
    """``NAME_OR_PATH[=SERVED_NAME]``, split on the last ``=``.

    Without ``=`` the served name is the value as given. A path that itself
    holds ``=`` therefore needs an explicit ``=SERVED_NAME``. Raises ValueError
    for an empty location or served name.
    """
    location, equals, served_name = value.rpartition("=")
    if not equals:
        location = served_name = value
    if not location or not served_name:
        raise ValueError(f"{value!r} is not NAME_OR_PATH or NAME_OR_PATH=SERVED_NAME")
    return ModelChoice(location, served_name)


def with_models(
    settings: Settings,
    service: str,
    models: Sequence[ModelChoice],
    backend: Backend | None,
) -> Settings:
    """``settings`` with ``service``'s models (``<service>_model``, ``<service>_models``) and
    ``<service>_backend`` replaced by the command line's; unchanged where nothing was given."""
    update: dict[str, object] = {}
    if models:
        update[f"{service}_model"] = models[0].served_name
        update[f"{service}_models"] = {model.served_name: model.location for model in models}
    if backend is not None:
        update[f"{service}_backend"] = backend.value
    return settings.model_copy(update=update)


def apply_model_options(
    settings: Settings,
    service: str,
    values: Sequence[str],
    backend: Backend | None,
) -> Settings:
    """The settings ``serve`` runs with; a usage error (exit 2) for a malformed ``--model``
    or options given to a service without models, exit 1 for a model found nowhere."""
    if service not in MODEL_SERVICES and (values or backend is not None):
        option = "--model" if values else "--backend"
        raise typer.BadParameter(
            f"{service} serves no models; only embedding and reranking take {option}",
            param_hint=option,
        )
    models: list[ModelChoice] = []
    for value in values:
        try:
            choice = parse_model_option(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--model") from None
        if any(choice.served_name == seen.served_name for seen in models):
            raise typer.BadParameter(
                f"served name {choice.served_name!r} is given twice", param_hint="--model"
            )
        models.append(choice)
    problem = _unresolvable(models, allow_download=settings.allow_download)
    if problem is not None:
        Console(stderr=True).print(Text(f"{service}: {problem}", style="red"), soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
    return with_models(settings, service, models, backend)


def _unresolvable(models: Sequence[ModelChoice], *, allow_download: bool) -> str | None:
    """Why the first model that resolves nowhere cannot be found, or None when all resolve.

    Checked before the service starts so that a mistyped ``--model`` fails at
    once, not after the device check and the other models have loaded.
    """
    for model in models:
        try:
            resolve_model_path(model.location, allow_download=allow_download)
        except FileNotFoundError as exc:
            return str(exc)
    return None
