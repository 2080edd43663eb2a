"""Write the layout corpus: PDFs laid out line by line with fpdf2, each with its truth.

Every line is placed at explicit coordinates, so the true reading order, the table
cells, the running lines and the hyphenated words are known exactly. Scanned pages are
such a page rendered at 150 dpi, skewed, noised and embedded as a JPEG with no text.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium  # type: ignore[import-untyped]
from bench.doc_corpus.truth import (
    DocumentTruth,
    PageTruth,
    Prose,
    Spec,
    TableTruth,
    spec_for,
    truth_path,
)
from fpdf import FPDF
from PIL import Image, ImageFilter

__all__ = ["build", "generate"]

A4 = (595.28, 841.89)
MARGIN = 56.0
BODY, LEAD = 10.0, 13.0
GUTTER = 18.0
SCAN_DPI = 150
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
SUPERSCRIPTS = "¹²³⁴⁵⁶⁷⁸⁹"
# Fixed so that the same seed gives the same bytes (fpdf2 stamps the date otherwise).
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def generate(out_dir: Path, *, seed: int = 2026, count: int = 60) -> list[Path]:
    """Write ``count`` PDFs and their ``.truth.json`` into ``out_dir``; returns the PDF paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for index in range(count):
        spec = spec_for(index, rng)
        name = f"doc-{index:03d}-{spec.primary}"
        data, truth = build(spec, random.Random(rng.getrandbits(64)), name=name, seed=seed)
        path = out_dir / f"{name}.pdf"
        path.write_bytes(data)
        truth.save(truth_path(path))
        paths.append(path)
    return paths


def build(spec: Spec, rng: random.Random, *, name: str, seed: int) -> tuple[bytes, DocumentTruth]:
    """One document's PDF bytes and truth."""
    writer = _Writer(spec, rng)
    writer.write()
    data = bytes(writer.pdf.output())
    rotated = [page.number - 1 for page in writer.pages if page.rotation]
    if rotated:
        data = _set_rotation(data, rotated)
    if spec.scanned:
        data = _scan(data, rng)
        for page in writer.pages:
            page.scanned = True
    return data, DocumentTruth(name=name, seed=seed, kinds=spec.kinds(), pages=writer.pages)


def _set_rotation(data: bytes, pages: list[int]) -> bytes:
    document, out = pdfium.PdfDocument(data), io.BytesIO()
    for index in pages:
        document[index].set_rotation(90)
    document.save(out)
    document.close()
    # pdfium writes a random second file ID; an ID of the same length keeps the bytes fixed.
    stable = hashlib.md5(data, usedforsecurity=False).hexdigest().upper()
    return re.sub(
        rb"/ID\[<\w{32}><\w{32}>\]", f"/ID[<{stable}><{stable}>]".encode(), out.getvalue()
    )


def _scan(data: bytes, rng: random.Random) -> bytes:
    """Each page rendered at SCAN_DPI, skewed 0.5-1.5 degrees, noised, as a full-page JPEG."""
    noise = np.random.default_rng(rng.getrandbits(32))
    document = pdfium.PdfDocument(data)
    pdf = _new_pdf()
    try:
        for page in document:
            image = page.render(scale=SCAN_DPI / 72).to_pil().convert("L")
            angle = rng.uniform(0.5, 1.5) * rng.choice((-1, 1))
            image = image.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
            image = image.filter(ImageFilter.GaussianBlur(0.6))
            pixels = np.asarray(image, dtype=np.float32) + noise.normal(0, 14, image.size[::-1])
            specks = noise.random(pixels.shape) < 0.0015
            pixels[specks] = 40
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            jpeg = io.BytesIO()
            image.save(jpeg, format="JPEG", quality=80)
            pdf.add_page()
            pdf.image(io.BytesIO(jpeg.getvalue()), x=0, y=0, w=A4[0], h=A4[1])
    finally:
        document.close()
    return bytes(pdf.output())


def _new_pdf() -> FPDF:
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_creation_date(CREATED)
    pdf.set_creator("servicegrid bench/doc_corpus")
    return pdf


def _font(pdf: FPDF) -> str:
    """DejaVu Sans when installed (all the accented text), else Helvetica (Latin-1 only)."""
    regular, bold = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf"
    if regular.exists() and bold.exists():
        pdf.add_font("dejavu", "", str(regular))
        pdf.add_font("dejavu", "B", str(bold))
        return "dejavu"
    return "Helvetica"


@dataclass(slots=True)
class _Frame:
    """The page area being filled: its columns, the current column and y."""

    left: float
    width: float
    top: float
    bottom: float
    columns: int
    column: int = 0
    y: float = 0.0

    def column_x(self) -> float:
        return self.left + self.column * (self.column_width() + GUTTER)

    def column_width(self) -> float:
        return (self.width - GUTTER * (self.columns - 1)) / self.columns

    def lines_left(self) -> int:
        here = int((self.bottom - self.y) // LEAD)
        full = int((self.bottom - self.top) // LEAD)
        return here + full * (self.columns - 1 - self.column)


class _Writer:
    """Flows a spec's blocks onto pages and records each page's truth."""

    def __init__(self, spec: Spec, rng: random.Random) -> None:
        self.spec, self.rng = spec, rng
        self.pdf = _new_pdf()
        self.font = _font(self.pdf)
        self.prose = Prose(rng, accented=spec.accented, latin1=self.font == "Helvetica")
        self.pages: list[PageTruth] = []
        self.running_title = self.prose.title()
        self.footer = rng.choice(("Page {n}", "{n}", "{t} - page {n}"))
        # Footnote marks as superscript characters, or as small raised ordinary digits.
        self.raised = rng.random() < 0.5
        self.footnote_count = 0
        self.stack = ExitStack()
        self.frame = _Frame(0, 0, 0, 0, 1)

    def write(self) -> None:
        self._new_page()
        self._title(self.prose.title())
        if self.spec.columns > 1:
            self._paragraph(self.prose.paragraph(3), full=True)
        handlers = {"heading": self._heading, "table": self._table, "list": self._list}
        for kind, payload in self._blocks():
            handlers.get(kind, self._paragraph)(payload)
        self._finish_page()

    def _blocks(self) -> list[tuple[str, str]]:
        blocks: list[tuple[str, str]] = []
        extras = [("table", kind) for kind in self.spec.tables]
        extras += [("list", self.rng.choice(("bullet", "number")))] if self.spec.lists else []
        for index in range(self.spec.paragraphs):
            if index and index % 3 == 0:
                blocks.append(("heading", self.prose.heading()))
            blocks.append(("paragraph", self.prose.paragraph(self.rng.randint(3, 6))))
            if extras and index % 2 == 1:
                blocks.append(extras.pop(0))
        return blocks + extras

    def _new_page(self) -> None:
        if self.pages:
            self._finish_page()
        rotated = self.spec.rotated and len(self.pages) == 1
        self.pdf.add_page()
        width, height = (A4[1], A4[0]) if rotated else A4
        if rotated:
            # Drawn turned by 90 degrees about (h/2, h/2); /Rotate 90 then shows it upright.
            self.stack.enter_context(self.pdf.rotation(90, x=A4[1] / 2, y=A4[1] / 2))
        page = PageTruth(number=len(self.pages) + 1, columns=self.spec.columns)
        page.rotation = 90 if rotated else 0
        self.pages.append(page)
        bottom = height - MARGIN - (44 if self.spec.footnotes else 0)
        self.frame = _Frame(MARGIN, width - 2 * MARGIN, MARGIN, bottom, self.spec.columns, y=MARGIN)
        self.page_height, self.page_width = height, width
        self.notes: list[tuple[str, str]] = []
        if self.spec.running:
            self._text(MARGIN, 40, self.running_title, size=8)
            page.headers.append(self.running_title)

    def _finish_page(self) -> None:
        page = self.pages[-1]
        if self.notes:
            y = self.frame.bottom + 12
            self.pdf.line(MARGIN, y, MARGIN + 120, y)
            for number, note in self.notes:
                y += 11
                self._text(MARGIN, y, f"{number} {note}", size=7.5)
                page.footnotes.append(note)
        if self.spec.running:
            footer = self.footer.format(n=page.number, t=self.running_title.split()[0])
            self._text(self.page_width - MARGIN - 60, self.page_height - 34, footer, size=8)
            page.footers.append(footer)
        self.stack.close()

    def _text(self, x: float, y: float, text: str, *, size: float, bold: bool = False) -> None:
        pieces = re.split(f"([{SUPERSCRIPTS}])", text) if self.raised else [text]
        for piece in pieces:
            raised = piece != "" and piece in SUPERSCRIPTS
            self.pdf.set_font(self.font, "B" if bold else "", size * 0.6 if raised else size)
            shown = str(SUPERSCRIPTS.index(piece) + 1) if raised else piece
            self.pdf.text(x, y - size * 0.35 if raised else y, shown)
            x += self.pdf.get_string_width(shown)

    def _width(self, text: str, size: float, bold: bool = False) -> float:
        self.pdf.set_font(self.font, "B" if bold else "", size)
        return float(self.pdf.get_string_width(text))

    def _wrap(
        self, text: str, width: float, size: float, bold: bool = False
    ) -> tuple[list[str], list[str]]:
        """Greedy line breaking: the lines, and the words split with '-' at a line end."""
        lines, split_words, line = [], [], ""
        pending = text.split()[::-1]
        while pending:
            word = pending.pop()
            candidate = f"{line} {word}".strip()
            if self._width(candidate, size, bold) <= width or not line:
                line = candidate
                continue
            split = self._split(line, word, width, size, bold) if self.spec.hyphenate else 0
            if split:
                lines.append(f"{line} {word[:split]}-")
                split_words.append(word.strip(".,;:" + SUPERSCRIPTS))
                pending.append(word[split:])
            else:
                lines.append(line)
                pending.append(word)
            line = ""
        return ([*lines, line] if line else lines), split_words

    def _split(self, line: str, word: str, width: float, size: float, bold: bool) -> int:
        core = word.rstrip(".,;:" + SUPERSCRIPTS)
        if len(core) < 8 or not core.isalpha():
            return 0
        for split in range(len(core) - 3, 2, -1):
            head = f"{line} {word[:split]}-" if line else f"{word[:split]}-"
            if self._width(head, size, bold) <= width:
                return split
        return 0

    def _draw(self, text: str, *, size: float, bold: bool, full: bool, step: float) -> None:
        """Lay ``text`` out line by line, continuing in the next column when this one is full."""
        width = self.frame.width if full else self.frame.column_width()
        lines, split_words = self._wrap(text, width, size, bold)
        self.pages[-1].hyphenated.extend(split_words)
        for line in lines:
            if not full and self.frame.y + step > self.frame.bottom:
                self.frame.column, self.frame.y = self.frame.column + 1, self.frame.top
            x = self.frame.left if full else self.frame.column_x()
            self.frame.y += step
            self._text(x, self.frame.y, line, size=size, bold=bold)

    def _title(self, text: str) -> None:
        self._draw(text, size=16, bold=True, full=True, step=20)
        self.frame.y += 8
        self.frame.top = self.frame.y
        self.pages[-1].body.append(text)

    def _heading(self, text: str) -> None:
        if self.frame.lines_left() < 6:
            self._new_page()
        elif self.frame.y + 5 * LEAD > self.frame.bottom:
            self.frame.column, self.frame.y = self.frame.column + 1, self.frame.top
        self._draw(text, size=12, bold=True, full=False, step=15)
        self.frame.y += 2
        self.pages[-1].body.append(text)

    def _paragraph(self, text: str, *, full: bool = False, indent: str = "") -> None:
        width = self.frame.width if full else self.frame.column_width()
        needed = len(self._wrap(indent + text, width, BODY)[0]) + 1
        if not full and self.frame.lines_left() < needed:
            self._new_page()
        shown = text if full else self._footnote(text)
        self._draw(indent + shown, size=BODY, bold=False, full=full, step=LEAD)
        self.frame.y += LEAD * 0.6
        if full:
            self.frame.top = self.frame.y
        self.pages[-1].body.append((indent + text).strip())

    def _footnote(self, text: str) -> str:
        """``text`` with a superscript marker on one word when this page still takes a note."""
        full = len(self.notes) >= 2 or self.footnote_count >= len(SUPERSCRIPTS)
        if not self.spec.footnotes or full or (self.notes and self.rng.random() < 0.6):
            return text
        self.footnote_count += 1
        marker = SUPERSCRIPTS[self.footnote_count - 1]
        self.notes.append((marker, self.prose.sentence()))
        words = text.split()
        at = self.rng.randrange(len(words))
        words[at] = words[at].rstrip(".,") + marker + words[at][len(words[at].rstrip(".,")) :]
        return " ".join(words)

    def _list(self, style: str) -> None:
        items = [self.prose.sentence() for _ in range(self.rng.randint(3, 5))]
        for number, item in enumerate(items, start=1):
            marker = "•" if style == "bullet" and self.font != "Helvetica" else f"{number}."
            self._paragraph(item, indent=f"{marker} ")
            self.pages[-1].list_items.append(f"{marker} {item}")

    def _table(self, kind: str) -> None:
        """A table with a bold header row, ruled (every cell boxed) or unruled (aligned only)."""
        rows = self.prose.table(self.rng.randint(3, 6), self.rng.randint(3, 5))
        gap = self.rng.choice((14.0, 24.0, 36.0))  # from tight to airy columns
        widths = [
            max(self._width(row[col], BODY, bold=True) for row in rows) + gap
            for col in range(len(rows[0]))
        ]
        height = 18.0
        if self.frame.lines_left() < int(height * len(rows) // LEAD) + 3:
            self._new_page()
        self.frame.y += LEAD
        for index, row in enumerate(rows):
            x = self.frame.left
            for width, cell in zip(widths, row, strict=True):
                if kind == "ruled":
                    self.pdf.rect(x, self.frame.y, width, height)
                self._text(x + 5, self.frame.y + 12.5, cell, size=BODY, bold=index == 0)
                x += width
            self.frame.y += height
        self.frame.y += LEAD
        truth = TableTruth(kind="ruled" if kind == "ruled" else "unruled", rows=rows)
        self.pages[-1].tables.append(truth)
