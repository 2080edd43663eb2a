"""``servicegrid serve embedding|reranking --model NAME_OR_PATH[=SERVED_NAME] --backend B``."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servicegrid.cli import app
from servicegrid.cli._models import Backend, ModelChoice, parse_model_option, with_models
from servicegrid.settings import load_settings


@pytest.mark.parametrize(
    ("value", "location", "served_name"),
    [
        ("/models/mini", "/models/mini", "/models/mini"),
        ("BAAI/bge-small-en-v1.5", "BAAI/bge-small-en-v1.5", "BAAI/bge-small-en-v1.5"),
        ("/models/mini=mini", "/models/mini", "mini"),
        ("/models/mini=acme/mini", "/models/mini", "acme/mini"),
        # the last "=" splits: a path holding "=" takes an explicit served name, which holds none
        ("/runs/lr=0.1/model=tuned", "/runs/lr=0.1/model", "tuned"),
        ("/runs/lr=0.1=run", "/runs/lr=0.1", "run"),
    ],
)
def test_model_options_split_on_the_last_equals_sign(
    value: str, location: str, served_name: str
) -> None:
    assert parse_model_option(value) == ModelChoice(location, served_name)


@pytest.mark.parametrize("value", ["", "=", "=mini", "/models/mini="])
def test_a_model_option_with_an_empty_side_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="NAME_OR_PATH=SERVED_NAME"):
        parse_model_option(value)


def test_command_line_models_replace_the_configured_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICEGRID_EMBEDDING_MODEL", "configured")
    monkeypatch.setenv("SERVICEGRID_EMBEDDING_MODELS", '{"other": "/models/other"}')
    settings = load_settings()
    chosen = with_models(
        settings,
        "embedding",
        [ModelChoice("/models/mini", "mini"), ModelChoice("acme/large", "acme/large")],
        Backend.ONNX_INT8,
    )
    assert chosen.embedding_model == "mini"
    assert chosen.embedding_models == {"mini": "/models/mini", "acme/large": "acme/large"}
    assert chosen.embedding_backend == "onnx-int8"
    assert chosen.reranking_model == settings.reranking_model
    assert chosen.reranking_backend == settings.reranking_backend


def test_without_options_the_settings_stay_as_configured() -> None:
    settings = load_settings()
    assert with_models(settings, "reranking", [], None) == settings


def test_the_backend_alone_keeps_the_configured_models() -> None:
    settings = load_settings()
    chosen = with_models(settings, "reranking", [], Backend.ONNX)
    assert chosen.reranking_backend == "onnx"
    assert chosen.reranking_model == settings.reranking_model
    assert chosen.reranking_models == settings.reranking_models


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["serve", "embedding", "--backend", "tensorrt"], "'tensorrt' is not one of"),
        (["serve", "gateway", "--model", "/models/mini"], "only embedding and reranking"),
        (["serve", "documents", "--backend", "onnx"], "only embedding and reranking"),
        (["serve", "embedding", "--model", "=mini"], "NAME_OR_PATH=SERVED_NAME"),
        (["serve", "embedding", "--model", "a=x", "--model", "b=x"], "'x' is given twice"),
    ],
)
def test_misused_model_options_are_usage_errors(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert complaint in " ".join(result.stderr.replace("│", " ").split())


def test_the_help_names_both_options() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--model" in result.output
    assert "NAME_OR_PATH[=SERVED_NAME]" in result.output
    assert "--backend" in result.output
    assert "onnx-int8" in result.output


# -- the service as a real process ---------------------------------------------


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    """The packaged MiniLM as a local folder of links, under a name of its own."""
    pytest.importorskip("torch", reason="the models extra (torch) is not installed")
    from servicegrid.models import MINILM_NAME, packaged_model_path

    packaged = packaged_model_path(MINILM_NAME)
    assert packaged is not None
    folder = tmp_path / "models" / "mini"
    for source in packaged.rglob("*"):
        target = folder / source.relative_to(packaged)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    return folder


def test_a_model_found_nowhere_fails_at_start_with_the_reason(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the models extra (torch) is not installed")
    from tests.services.test_service_processes import servicegrid
    from tests.support.faulty_server import free_port

    missing = tmp_path / "nonexistent"
    process = servicegrid(
        "serve",
        "embedding",
        "--model",
        str(missing),
        "--port",
        str(free_port()),
        SERVICEGRID_DEVICE="cpu",
        HF_HUB_CACHE=str(tmp_path / "hub"),
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "Traceback" not in stderr
    assert f"model '{missing}' is neither a packaged model" in stderr
    assert f"no folder {missing}" in stderr
    assert f"Hugging Face cache {tmp_path / 'hub'}" in stderr
    assert "SERVICEGRID_ALLOW_DOWNLOAD=true" in stderr


def test_reranking_refuses_a_model_found_nowhere_too(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the models extra (torch) is not installed")
    result = CliRunner().invoke(
        app,
        ["serve", "reranking", "--model", f"{tmp_path / 'nonexistent'}=ranker"],
        env={"SERVICEGRID_DEVICE": "cpu"},
    )
    assert result.exit_code == 1
    assert "is neither a packaged model" in result.stderr


async def test_served_names_come_from_the_command_line(model_folder: Path, tmp_path: Path) -> None:
    from servicegrid.clients import EmbeddingClient
    from tests.services.test_service_processes import servicegrid, wait_serving
    from tests.support.faulty_server import free_port

    # a hub id found in a Hugging Face cache filled by hand, as a download leaves it
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--mini"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots").mkdir()
    (repo / "snapshots" / revision).symlink_to(model_folder, target_is_directory=True)

    port = free_port()
    process = servicegrid(
        "serve",
        "embedding",
        "--model",
        f"{model_folder}=mini",
        "--model",
        "acme/mini",
        "--port",
        str(port),
        SERVICEGRID_DEVICE="cpu",
        HF_HUB_CACHE=str(tmp_path / "hub"),
    )
    try:
        await wait_serving(port)
        async with EmbeddingClient(service_url=f"127.0.0.1:{port}", registry=None) as client:
            listed = await client.list_models()
            default = await client.generate_embeddings(["a short text"])
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert {model.name for model in listed.models} == {"mini", "acme/mini"}
    assert default.metadata.model_name == "mini"
