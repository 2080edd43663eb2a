"""Native workflow steps: actions of servicegrid's own gRPC services, run through typed clients.

A workflow step that names service ``embedding``, ``reranking`` or ``documents`` runs here
instead of as an HTTP call to a registered service.

.. code-block:: python

    runner = NativeStepRunner()                        # endpoints from settings
    out = await runner.run("embedding", "generate", {"texts": ["a text"]})
    out["embeddings"][0][:3], out["model"], out["dimensions"]
    await runner.aclose()

Input is checked against the action's JSON Schema first (``ValidationError`` whose
``validation_errors`` are ``{"field": "texts[0]", "message": ...}`` entries); an unknown
service or action raises ``ResourceNotFoundError``. Errors from the clients (unavailable,
deadline, the service's own validation) pass through unchanged.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Self, TypeVar, cast

from google.protobuf.json_format import MessageToDict
from jsonschema import exceptions as jsonschema_exceptions  # type: ignore[import-untyped]

from servicegrid.clients.documents import DoclingVLMClient
from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.factory import (
    create_docling_vlm_client,
    create_embedding_client,
    create_reranking_client,
)
from servicegrid.clients.grpc_base import GrpcServiceClient, ServiceClientConfig
from servicegrid.clients.reranking import RerankingClient
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ResourceNotFoundError, ValidationError
from servicegrid.integration.json_checks import schema_validator
from servicegrid.proto import docling_vlm_service_pb2, embedding_service_pb2, reranking_service_pb2
from servicegrid.settings import Settings, load_settings
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry

__all__ = [
    "NATIVE_SERVICES",
    "NativeAction",
    "NativeStepRunner",
    "native_action",
    "native_actions",
    "validate_native_input",
]

NATIVE_SERVICES: Final = frozenset({"embedding", "reranking", "documents"})
"""The service names a workflow step may use for a native action."""


_INT32_MAX: Final = 2**31 - 1
# PDF readers accept the header after up to 1 KiB of leading junk; so does the service.
_PDF_HEADER: Final = b"%PDF-"
_PDF_HEADER_WINDOW: Final = 1024


@dataclass(frozen=True, slots=True)
class NativeAction:
    """One native action and the JSON Schemas (draft 2020-12) of its input and output."""

    service: str
    action: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]

    @property
    def name(self) -> str:
        """``service.action``, as errors and logs name it."""
        return f"{self.service}.{self.action}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: service, action, description, input_schema, output_schema."""
        return {
            "service": self.service,
            "action": self.action,
            "description": self.description,
            "input_schema": copy.deepcopy(self.input_schema),
            "output_schema": copy.deepcopy(self.output_schema),
        }


# ---- the actions -----------------------------------------------------------------------

_SCHEMA: Final = "https://json-schema.org/draft/2020-12/schema"


def _object(
    properties: dict[str, Any], required: list[str], *, closed: bool, root: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if root:
        schema = {"$schema": _SCHEMA, **schema}
    if closed:
        schema["additionalProperties"] = False
    return schema


_STRINGS: Final = {"type": "array", "items": {"type": "string"}}
_INT32: Final = {"type": "integer", "maximum": _INT32_MAX}

_EMBEDDING_GENERATE = NativeAction(
    service="embedding",
    action="generate",
    description="Embed texts with the embedding service; one vector per text, in order.",
    input_schema=_object(
        {
            "texts": {**_STRINGS, "minItems": 1, "description": "The texts to embed."},
            "model_name": {
                "type": "string",
                "description": "The model to use; absent or empty: the service's default.",
            },
            "normalize": {
                "type": "boolean",
                "default": False,
                "description": "Scale every vector to unit length.",
            },
        },
        ["texts"],
        closed=True,
    ),
    output_schema=_object(
        {
            "embeddings": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}},
            },
            "model": {"type": "string", "description": "The model that ran."},
            "dimensions": {"type": "integer", "description": "The length of each vector."},
        },
        ["embeddings", "model", "dimensions"],
        closed=False,
    ),
)

_RERANKING_RERANK = NativeAction(
    service="reranking",
    action="rerank",
    description=(
        "Score documents against a query with the reranking service; results come highest "
        "score first. No documents give no results, without a call."
    ),
    input_schema=_object(
        {
            "query": {"type": "string", "minLength": 1},
            "documents": {**_STRINGS, "description": "The documents to score."},
            "model_name": {
                "type": "string",
                "description": "The model to use; absent or empty: the service's default.",
            },
            "top_k": {"type": "integer", "minimum": 1, "description": "Keep the best k only."},
            "return_documents": {
                "type": "boolean",
                "default": True,
                "description": "Put each document's text in its result.",
            },
        },
        ["query", "documents"],
        closed=True,
    ),
    output_schema=_object(
        {
            "results": {
                "type": "array",
                "items": _object(
                    {
                        "index": {"type": "integer", "description": "Position in documents."},
                        "score": {"type": "number"},
                        "document": {"type": "string"},
                    },
                    ["index", "score"],
                    closed=False,
                    root=False,
                ),
            },
            "model": {
                "type": "string",
                "description": "The model that ran; the model asked for (or empty) when no "
                "documents were given.",
            },
        },
        ["results", "model"],
        closed=False,
    ),
)

_DOCLING_CONFIG: Final = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string", "description": "Engine; empty: the service's default."},
        "batch_size": {**_INT32, "minimum": 0},
        "timeout_seconds": {"type": "number", "minimum": 0},
        "extract_tables": {"type": "boolean", "default": True},
        "extract_figures": {"type": "boolean", "default": True},
        "extract_text_blocks": {"type": "boolean", "default": True},
        "first_page": {**_INT32, "minimum": 1, "description": "1-based, inclusive."},
        "last_page": {**_INT32, "minimum": 1, "description": "1-based, inclusive."},
    },
    "additionalProperties": False,
}

_DOCUMENTS_PROCESS_PDF = NativeAction(
    service="documents",
    action="process_pdf",
    description=(
        "Extract structure, tables, figures and text blocks from a PDF with the document "
        "service. The output is the DocTagsResult (proto field names) plus text and page_count."
    ),
    input_schema=_object(
        {
            "pdf_base64": {
                "type": "string",
                "minLength": 1,
                "contentEncoding": "base64",
                "contentMediaType": "application/pdf",
                "description": "The PDF file, base64-encoded (whitespace is ignored).",
            },
            "filename": {"type": "string", "description": "Reported back in metadata."},
            "config": _DOCLING_CONFIG,
        },
        ["pdf_base64"],
        closed=True,
    ),
    output_schema=_object(
        {
            "text": {
                "type": "string",
                "description": "The document's paragraphs in reading order, blank-line separated.",
            },
            "page_count": {"type": "integer"},
            "document": {"type": "object", "description": "title, sections, paragraphs"},
            "tables": {"type": "array", "items": {"type": "object"}},
            "figures": {"type": "array", "items": {"type": "object"}},
            "text_blocks": {"type": "array", "items": {"type": "object"}},
            "metadata": {
                "type": "object",
                "description": "filename, page_count, processing_model, processing_time_ms, "
                "checksum",
            },
        },
        ["text", "page_count", "document", "tables", "figures", "text_blocks", "metadata"],
        closed=False,
    ),
)

_ACTIONS: Final[dict[tuple[str, str], NativeAction]] = {
    (a.service, a.action): a
    for a in (_EMBEDDING_GENERATE, _RERANKING_RERANK, _DOCUMENTS_PROCESS_PDF)
}
# Built from private copies: a caller editing a NativeAction's schema changes nothing here.
_VALIDATORS: Final[dict[tuple[str, str], Any]] = {
    key: schema_validator(copy.deepcopy(a.input_schema)) for key, a in _ACTIONS.items()
}


def native_action(service: str, action: str) -> NativeAction | None:
    """The native action ``service.action``, or None if there is none."""
    return _ACTIONS.get((service, action))


def native_actions() -> list[NativeAction]:
    """Every native action, by service then action."""
    return [_ACTIONS[key] for key in sorted(_ACTIONS)]


def _require(service: str, action: str) -> NativeAction:
    spec = native_action(service, action)
    if spec is None:
        known = ", ".join(a.name for a in native_actions())
        raise ResourceNotFoundError(
            f"native action {service}.{action} not found; known: {known}",
            resource_type="action",
            resource_id=f"{service}.{action}",
            service=service,
        )
    return spec


# ---- input checks ----------------------------------------------------------------------

_JSON_TYPES: Final = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
    (type(None), "null"),
)


def _json_type(value: object) -> str:
    for kind, name in _JSON_TYPES:  # bool first: it is also an int
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _problems(error: jsonschema_exceptions.ValidationError) -> list[tuple[str, str]]:
    """(field, message) pairs for one schema error; messages never echo a (large) value."""
    where = _path(error.absolute_path)
    kind, limit, instance = error.validator, error.validator_value, error.instance
    if kind == "required":
        missing = [name for name in limit if name not in instance]
        return [(_path([*error.absolute_path, name]), "is required") for name in missing]
    if kind == "additionalProperties":
        allowed = ", ".join(error.schema.get("properties", {}))
        extra = [name for name in instance if name not in error.schema.get("properties", {})]
        return [
            (_path([*error.absolute_path, name]), f"is not an accepted field; accepted: {allowed}")
            for name in extra
        ]
    if kind == "type":
        return [(where, f"must be of type {limit}, got {_json_type(instance)}")]
    if kind in ("minItems", "minLength") and limit == 1:
        return [(where, "must not be empty")]
    if kind == "minItems":
        return [(where, f"must have at least {limit} items")]
    if kind == "minimum":
        return [(where, f"must be >= {limit}, got {instance}")]
    if kind == "maximum":
        return [(where, f"must be <= {limit}, got {instance}")]
    message = error.message
    return [(where, message if len(message) <= 200 else message[:197] + "...")]


def _check_schema(spec: NativeAction, input_data: object) -> dict[str, Any]:
    """``input_data`` if it matches the action's input schema; else a ValidationError."""
    validator = _VALIDATORS[spec.service, spec.action]
    errors = sorted(
        validator.iter_errors(input_data),
        key=lambda e: ([str(part) for part in e.absolute_path], str(e.validator)),
    )
    found: list[dict[str, str]] = []
    for error in errors:
        for field, message in _problems(error):
            entry = {"field": field or "input", "message": message}
            if entry not in found:
                found.append(entry)
    if found:
        raise _invalid(spec, found)
    return cast(dict[str, Any], input_data)


def _invalid(spec: NativeAction, problems: list[dict[str, str]]) -> ValidationError:
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return ValidationError(
        f"{spec.name}: {summary}", service=spec.service, validation_errors=problems
    )


def _decode_pdf(spec: NativeAction, data: Mapping[str, Any]) -> bytes:
    """The PDF bytes of ``pdf_base64``; a ValidationError naming it if they are not a PDF."""
    text = "".join(str(data["pdf_base64"]).split())
    try:
        content = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(spec, [{"field": "pdf_base64", "message": "is not valid base64"}]) from None
    if not content:
        raise _invalid(spec, [{"field": "pdf_base64", "message": "decodes to no bytes"}])
    if _PDF_HEADER not in content[: _PDF_HEADER_WINDOW + len(_PDF_HEADER)]:
        raise _invalid(spec, [{"field": "pdf_base64", "message": "is not a PDF (no %PDF- header)"}])
    return content


def validate_native_input(service: str, action: str, input_data: object) -> None:
    """Check ``input_data`` for ``service.action`` without calling anything.

    Raises ResourceNotFoundError for an unknown action and ValidationError (with
    ``validation_errors``) for bad input, exactly as :meth:`NativeStepRunner.run` would.
    """
    spec = _require(service, action)
    data = _check_schema(spec, input_data)
    if spec is _DOCUMENTS_PROCESS_PDF:
        _decode_pdf(spec, data)


# ---- the runner ------------------------------------------------------------------------

C = TypeVar("C", bound=GrpcServiceClient)
_Handler = Callable[["NativeStepRunner", dict[str, Any], float | None], Awaitable[dict[str, Any]]]


class NativeStepRunner:
    """Runs native actions through one typed client per service, created on first use.

    ``endpoints`` maps a native service name to a gRPC target (``"host:port"``) and
    replaces the URL settings give it; ``configs`` gives a whole ``ServiceClientConfig``
    instead. The rest comes from ``settings`` (default: :func:`load_settings`, read only
    if some service needs it): ``EMBEDDING_SERVICE_URL`` (localhost:50052),
    ``RERANKING_SERVICE_URL`` (localhost:50053), ``DOCLING_VLM_SERVICE_URL``
    (localhost:50054), their timeouts and the shared retry and breaker values.
    Clients register in ``registry`` (None: not at all). Raises ValueError for an
    unknown service name or a bad endpoint.
    """

    def __init__(
        self,
        endpoints: Mapping[str, str] | None = None,
        *,
        configs: Mapping[str, ServiceClientConfig] | None = None,
        settings: Settings | None = None,
        registry: StatusRegistry | None = DEFAULT_REGISTRY,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        endpoints = dict(endpoints or {})
        given = dict(configs or {})
        for label, names in (("endpoints", endpoints), ("configs", given)):
            unknown = sorted(set(names) - NATIVE_SERVICES)
            if unknown:
                raise ValueError(
                    f"{label}: unknown native service(s) {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(NATIVE_SERVICES))}"
                )
        both = sorted(set(endpoints) & set(given))
        if both:
            raise ValueError(f"give endpoints or configs for a service, not both: {both}")
        self._configs: dict[str, ServiceClientConfig] = {}
        for service in sorted(NATIVE_SERVICES):
            if service in given:
                self._configs[service] = given[service]
                continue
            if settings is None:
                settings = load_settings()
            overrides = {"service_url": endpoints[service]} if service in endpoints else {}
            self._configs[service] = ServiceClientConfig.from_settings(
                settings, service, **overrides
            )
        self._registry = registry
        self._clock = clock
        self._clients: dict[str, GrpcServiceClient] = {}
        self._closed = False

    @property
    def configs(self) -> dict[str, ServiceClientConfig]:
        """The client config of each native service."""
        return dict(self._configs)

    async def run(
        self,
        service: str,
        action: str,
        input_data: dict[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - seconds per attempt, as clients take
    ) -> dict[str, Any]:
        """Run ``service.action`` on ``input_data``; returns its JSON output.

        ``timeout`` (seconds) bounds each attempt; default the client's. Raises
        ResourceNotFoundError (unknown action), ValidationError (bad input) or the
        client's ServiceError; RuntimeError after :meth:`aclose`.
        """
        spec = _require(service, action)
        data = _check_schema(spec, input_data)
        if self._closed:
            raise RuntimeError("NativeStepRunner is closed")
        return await _HANDLERS[spec.service, spec.action](self, data, timeout)

    def _client(self, service: str, kind: type[C], create: Callable[..., C]) -> C:
        client = self._clients.get(service)
        if client is None:
            client = create(self._configs[service], registry=self._registry, clock=self._clock)
            self._clients[service] = client
        assert isinstance(client, kind)
        return client

    async def _generate(self, data: dict[str, Any], per_attempt: float | None) -> dict[str, Any]:
        client = self._client("embedding", EmbeddingClient, create_embedding_client)
        config = (
            embedding_service_pb2.EmbeddingConfig(normalize=data["normalize"])
            if "normalize" in data
            else None
        )
        response = await client.generate_embeddings(
            data["texts"], data.get("model_name", ""), config, timeout=per_attempt
        )
        embeddings = [list(e.values) for e in response.embeddings]
        return {
            "embeddings": embeddings,
            "model": response.metadata.model_name,
            "dimensions": response.embeddings[0].dimension if response.embeddings else 0,
        }

    async def _rerank(self, data: dict[str, Any], per_attempt: float | None) -> dict[str, Any]:
        model_name: str = data.get("model_name", "")
        if not data["documents"]:
            return {"results": [], "model": model_name}
        client = self._client("reranking", RerankingClient, create_reranking_client)
        with_documents: bool = data.get("return_documents", True)
        config = reranking_service_pb2.RerankingConfig(
            model_name=model_name, return_documents=with_documents
        )
        response = await client.rerank_batch(
            data["query"], data["documents"], config, timeout=per_attempt
        )
        ranked = list(response.results)
        if "top_k" in data:
            ranked = ranked[: int(data["top_k"])]
        results: list[dict[str, Any]] = []
        for result in ranked:
            item: dict[str, Any] = {"index": result.document_index, "score": result.score}
            if with_documents:
                item["document"] = result.document
            results.append(item)
        return {"results": results, "model": response.metadata.model_name}

    async def _process_pdf(self, data: dict[str, Any], per_attempt: float | None) -> dict[str, Any]:
        content = _decode_pdf(_DOCUMENTS_PROCESS_PDF, data)
        client = self._client("documents", DoclingVLMClient, create_docling_vlm_client)
        config = None
        if "config" in data:
            # Unset extract flags mean "extract", as with no config at all (proto3 reads False).
            values = {
                "extract_tables": True,
                "extract_figures": True,
                "extract_text_blocks": True,
                **data["config"],
            }
            for name in ("batch_size", "first_page", "last_page"):
                if name in values:  # JSON Schema counts 2.0 as an integer; protobuf does not
                    values[name] = int(values[name])
            config = docling_vlm_service_pb2.DoclingConfig(**values)
        response = await client.process_pdf(
            content, data.get("filename", ""), config, timeout=per_attempt
        )
        result = response.result
        output = MessageToDict(
            result,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            unquote_int64_if_possible=True,  # processing_time_ms as an int, not a string
        )
        paragraphs = (p.text for p in result.document.paragraphs)
        output["text"] = "\n\n".join(text for text in paragraphs if text)
        output["page_count"] = result.metadata.page_count
        return output

    async def aclose(self) -> None:
        """Close every client this runner opened; idempotent. Then :meth:`run` raises."""
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


_HANDLERS: Final[dict[tuple[str, str], _Handler]] = {
    ("embedding", "generate"): NativeStepRunner._generate,
    ("reranking", "rerank"): NativeStepRunner._rerank,
    ("documents", "process_pdf"): NativeStepRunner._process_pdf,
}
