"""OCR for pages without a usable text layer: Tesseract, offline, through pytesseract.

Tesseract was picked over RapidOCR (ONNX) on the benchmark corpus's scanned pages:
it read more words right (RapidOCR ran words together: "metresover theyearwhile")
and took less time per page (docs/benchmarks.md). Its words come back with boxes,
shaped as pdfplumber's words, so a scanned page goes through the same columns,
tables and blocks as any other.

Tesseract is a system program (Debian: ``tesseract-ocr`` and ``tesseract-ocr-eng``;
``make`` installs them). Without it, :func:`find_ocr` answers None and the engine
reads text layers only, and says so.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Final, Protocol

from PIL import Image, ImageFilter

__all__ = ["OCR_DPI", "OcrEngine", "TesseractOcr", "find_ocr"]

_log = logging.getLogger("servicegrid.documents")

OCR_DPI: Final = 200
"""Pages are rendered at this resolution for OCR. On the benchmark's scans (150 dpi, noisy)
200 dpi read as many words as 300 dpi in 60% of the time (docs/benchmarks.md)."""
# Words Tesseract is less sure of than this (0-100) are dropped as noise.
_MIN_CONFIDENCE: Final = 30.0
# Tesseract's languages: English, with the Latin-script letters of most European languages.
_LANGUAGES: Final = "eng"
_FONT: Final = "ocr"
_CAP_HEIGHT: Final = 0.7
_SAME_SIZE: Final = 0.15


class OcrEngine(Protocol):
    """Reads the words of one page image."""

    name: str

    def words(self, image: Image.Image, *, scale: float) -> list[dict[str, Any]]:
        """Words as pdfplumber gives them (``text``, ``x0``, ``x1``, ``top``, ``bottom``,
        ``size``, ``fontname``), in points: pixel positions divided by ``scale``."""
        ...


class TesseractOcr:
    """Tesseract through pytesseract; ``version`` is the program's, for the result."""

    def __init__(self, *, languages: str = _LANGUAGES) -> None:
        import pytesseract  # type: ignore[import-untyped]

        # Tesseract's OpenMP threads made a page 4x slower on two cores (7 s, not 1.8 s);
        # pages run in parallel across the document service's worker processes instead.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        self._pytesseract = pytesseract
        self.languages = languages
        self.version = str(pytesseract.get_tesseract_version())
        self.name = f"tesseract {self.version.split()[0]}"

    def words(self, image: Image.Image, *, scale: float) -> list[dict[str, Any]]:
        # A 3x3 median filter takes out a scan's speckle: 95% -> 99% of the words read.
        cleaned = image.filter(ImageFilter.MedianFilter(3))
        # One block (--psm 6): Tesseract's own page segmentation dropped whole paragraphs
        # of noisy scans (64% of a page's words); the columns are found here afterwards.
        data = self._pytesseract.image_to_data(
            cleaned,
            lang=self.languages,
            config="--psm 6",
            output_type=self._pytesseract.Output.DICT,
        )
        lines: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
        for i, text in enumerate(data["text"]):
            text = str(text).strip()
            if not text or float(data["conf"][i]) < _MIN_CONFIDENCE:
                continue
            left, top = float(data["left"][i]) / scale, float(data["top"][i]) / scale
            width, height = float(data["width"][i]) / scale, float(data["height"][i]) / scale
            key = (int(data["block_num"][i]), int(data["par_num"][i]), int(data["line_num"][i]))
            lines.setdefault(key, []).append(
                {"text": text, "x0": left, "x1": left + width, "top": top, "bottom": top + height}
            )
        slope = _skew(list(lines.values()))
        for line in lines.values():
            for word in line:
                # A slight skew, undone by shearing: exact enough below a few degrees.
                shift = slope * (word["x0"] + word["x1"]) / 2
                word["top"] -= shift
                word["bottom"] -= shift
        words = [word for line in lines.values() for word in _as_one_line(line)]
        return _snap_sizes(words)


def _snap_sizes(words: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sizes within ``_SAME_SIZE`` of the page's median size set to it: measured from
    pixels, one font's lines differ by a little, and a little would split paragraphs."""
    if not words:
        return words
    sizes = sorted(word["size"] for word in words)
    body = sizes[len(sizes) // 2]
    for word in words:
        if abs(word["size"] - body) <= _SAME_SIZE * body:
            word["size"] = body
    return words


def _skew(lines: list[list[dict[str, Any]]]) -> float:
    """The page's skew as a slope (dy/dx): the median over lines of four words or more of
    the slope of their words' middles."""
    slopes: list[float] = []
    for line in lines:
        if len(line) < 4:
            continue
        xs = [(word["x0"] + word["x1"]) / 2 for word in line]
        ys = [(word["top"] + word["bottom"]) / 2 for word in line]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        if spread > 0:
            slopes.append(
                sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
            )
    if not slopes:
        return 0.0
    slopes.sort()
    return slopes[len(slopes) // 2]


def _as_one_line(words: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The words of one Tesseract line on one baseline: its top, its bottom, and one size.

    Word boxes hug their letters ("was" is shorter than "held"), and a slightly skewed
    scan drifts across a line; giving every word the line's box and size keeps the
    line one row of one font for the layout that follows.
    """
    top = min(word["top"] for word in words)
    bottom = max(word["bottom"] for word in words)
    heights = sorted(word["bottom"] - word["top"] for word in words)
    # Most words have an ascender or a capital, whose height is about 0.7 of the font size.
    size = round(heights[len(heights) // 2] / _CAP_HEIGHT, 1)
    return [
        {**word, "top": top, "bottom": bottom, "size": size, "fontname": _FONT} for word in words
    ]


def find_ocr() -> TesseractOcr | None:
    """Tesseract when both pytesseract and the ``tesseract`` program are installed."""
    if shutil.which("tesseract") is None:
        return None
    try:
        return TesseractOcr()
    except Exception as exc:  # pytesseract missing or the program failing to run
        _log.warning("tesseract is installed but cannot run: %s", exc)
        return None
