"""Native actions without a service: the registry, input checks, unknown actions, lifecycle."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from servicegrid.clients import ServiceClientConfig
from servicegrid.errors import ResourceNotFoundError, ServiceUnavailableError, ValidationError
from servicegrid.integration.native import (
    NATIVE_SERVICES,
    NativeStepRunner,
    native_action,
    native_actions,
    validate_native_input,
)
from servicegrid.settings import load_settings
from servicegrid.status import StatusRegistry
from tests.support.faulty_server import free_port

PDF_BASE64 = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()


@pytest.fixture
async def runner() -> AsyncIterator[NativeStepRunner]:
    """A runner whose services are not there: every test here fails before any call."""
    target = f"127.0.0.1:{free_port()}"
    async with NativeStepRunner(
        dict.fromkeys(NATIVE_SERVICES, target), settings=load_settings(), registry=None
    ) as runner:
        yield runner


def test_the_registry_lists_three_actions_with_valid_schemas() -> None:
    assert {"embedding", "reranking", "documents"} == NATIVE_SERVICES
    assert [a.name for a in native_actions()] == [
        "documents.process_pdf",
        "embedding.generate",
        "reranking.rerank",
    ]
    for action in native_actions():
        assert action.description
        Draft202012Validator.check_schema(action.input_schema)
        Draft202012Validator.check_schema(action.output_schema)
        assert native_action(action.service, action.action) is action
    assert native_action("embedding", "rerank") is None
    assert native_action("chroma", "generate") is None


def test_to_dict_is_a_copy_that_cannot_change_validation() -> None:
    action = native_action("embedding", "generate")
    assert action is not None
    body = action.to_dict()
    assert set(body) == {"service", "action", "description", "input_schema", "output_schema"}
    body["input_schema"]["required"].clear()
    assert action.input_schema["required"] == ["texts"]
    with pytest.raises(ValidationError):
        validate_native_input("embedding", "generate", {})


BAD_INPUTS: list[tuple[str, str, Any, str, str]] = [
    ("embedding", "generate", {}, "texts", "is required"),
    ("embedding", "generate", {"texts": []}, "texts", "must not be empty"),
    ("embedding", "generate", {"texts": "one text"}, "texts", "must be of type array"),
    ("embedding", "generate", {"texts": ["a", 7]}, "texts[1]", "must be of type string"),
    ("embedding", "generate", {"texts": ["a"], "normalize": "yes"}, "normalize", "boolean"),
    ("embedding", "generate", {"texts": ["a"], "text": "typo"}, "text", "not an accepted field"),
    ("embedding", "generate", ["not", "an", "object"], "input", "must be of type object"),
    ("reranking", "rerank", {"documents": ["d"]}, "query", "is required"),
    ("reranking", "rerank", {"query": "", "documents": ["d"]}, "query", "must not be empty"),
    ("reranking", "rerank", {"query": "q", "documents": "d"}, "documents", "array"),
    ("reranking", "rerank", {"query": "q", "documents": ["d"], "top_k": 0}, "top_k", ">= 1"),
    ("reranking", "rerank", {"query": "q", "documents": ["d"], "top_k": True}, "top_k", "integer"),
    ("documents", "process_pdf", {}, "pdf_base64", "is required"),
    ("documents", "process_pdf", {"pdf_base64": 42}, "pdf_base64", "must be of type string"),
    ("documents", "process_pdf", {"pdf_base64": "not base64!"}, "pdf_base64", "not valid base64"),
    ("documents", "process_pdf", {"pdf_base64": "aGVsbG8="}, "pdf_base64", "is not a PDF"),
    (
        "documents",
        "process_pdf",
        {"pdf_base64": PDF_BASE64, "config": {"first_page": 0}},
        "config.first_page",
        ">= 1",
    ),
    (
        "documents",
        "process_pdf",
        {"pdf_base64": PDF_BASE64, "config": {"batch_size": 2**40}},
        "config.batch_size",
        "<= 2147483647",
    ),
    (
        "documents",
        "process_pdf",
        {"pdf_base64": PDF_BASE64, "config": {"tables": False}},
        "config.tables",
        "not an accepted field",
    ),
]


@pytest.mark.parametrize(
    ("service", "action", "data", "field", "message"),
    BAD_INPUTS,
    ids=[f"{s}.{a}:{f}:{m}" for s, a, _, f, m in BAD_INPUTS],
)
async def test_bad_input_names_the_field(
    runner: NativeStepRunner, service: str, action: str, data: Any, field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await runner.run(service, action, data)
    error = caught.value
    assert error.service == service
    assert [e["field"] for e in error.validation_errors] == [field]
    assert message in error.validation_errors[0]["message"]
    assert f"{field}: " in str(error)
    with pytest.raises(ValidationError):
        validate_native_input(service, action, data)


async def test_every_problem_is_listed(runner: NativeStepRunner) -> None:
    with pytest.raises(ValidationError) as caught:
        await runner.run("reranking", "rerank", {"query": 1, "top_k": -1, "extra": None})
    fields = [e["field"] for e in caught.value.validation_errors]
    assert sorted(fields) == ["documents", "extra", "query", "top_k"]


async def test_a_large_bad_value_is_not_echoed(runner: NativeStepRunner) -> None:
    with pytest.raises(ValidationError) as caught:
        await runner.run("embedding", "generate", {"texts": "x" * 100_000})
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("service", "action"),
    [("embedding", "rerank"), ("embedding", "generate_batch"), ("gpu", "allocate"), ("", "")],
)
async def test_unknown_action_is_not_found(
    runner: NativeStepRunner, service: str, action: str
) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        await runner.run(service, action, {"texts": ["a"]})
    assert caught.value.resource_type == "action"
    assert caught.value.resource_id == f"{service}.{action}"
    assert "embedding.generate" in str(caught.value)  # lists what there is
    with pytest.raises(ResourceNotFoundError):
        validate_native_input(service, action, {})


def test_endpoints_default_to_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EMBEDDING_SERVICE_URL", "RERANKING_SERVICE_URL", "DOCLING_VLM_SERVICE_URL"):
        monkeypatch.delenv(name, raising=False)
    configs = NativeStepRunner(registry=None).configs
    assert {name: c.service_url for name, c in configs.items()} == {
        "embedding": "localhost:50052",
        "reranking": "localhost:50053",
        "documents": "localhost:50054",
    }
    assert configs["documents"].timeout == 300.0

    monkeypatch.setenv("RERANKING_SERVICE_URL", "reranker.internal:6000")
    monkeypatch.setenv("MAX_RETRY_ATTEMPTS", "1")
    configs = NativeStepRunner({"embedding": "grpc://embedder:7000"}, registry=None).configs
    assert configs["embedding"].service_url == "embedder:7000"
    assert configs["reranking"].service_url == "reranker.internal:6000"
    assert configs["reranking"].retry_attempts == 1


def test_configs_replace_settings_and_bad_arguments_raise() -> None:
    config = ServiceClientConfig("127.0.0.1:1", retry_attempts=1)
    runner = NativeStepRunner(
        {"embedding": "127.0.0.1:2"},
        configs={"reranking": config},
        settings=load_settings(),
        registry=None,
    )
    assert runner.configs["reranking"] is config
    with pytest.raises(ValueError, match="unknown native service"):
        NativeStepRunner({"gpu-management": "127.0.0.1:1"}, settings=load_settings())
    with pytest.raises(ValueError, match="not both"):
        NativeStepRunner({"reranking": "127.0.0.1:1"}, configs={"reranking": config})
    with pytest.raises(ValueError, match="service_url"):
        NativeStepRunner({"embedding": "http://embedder:7000"}, settings=load_settings())


async def test_an_unreachable_service_raises_its_typed_error() -> None:
    config = ServiceClientConfig(f"127.0.0.1:{free_port()}", timeout=5.0, retry_attempts=1)
    registry = StatusRegistry()
    async with NativeStepRunner(
        configs={"embedding": config}, settings=load_settings(), registry=registry
    ) as runner:
        assert len(registry) == 0  # clients are made on first use
        with pytest.raises(ServiceUnavailableError) as caught:
            await runner.run("embedding", "generate", {"texts": ["hello"]})
        assert caught.value.service == "embedding"
        assert "embedding" in registry
        assert "reranking" not in registry


async def test_a_closed_runner_refuses_to_run() -> None:
    runner = NativeStepRunner(settings=load_settings(), registry=None)
    await runner.aclose()
    await runner.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await runner.run("embedding", "generate", {"texts": ["a"]})


async def test_no_documents_rerank_to_no_results_without_a_call(
    runner: NativeStepRunner,
) -> None:
    out = await runner.run("reranking", "rerank", {"query": "q", "documents": []})
    assert out == {"results": [], "model": ""}
