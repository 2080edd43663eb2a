"""The corpus documents as data: what each one exercises (:class:`Spec`), what it holds
(the truth written next to it as ``<name>.truth.json``) and the prose it is written in."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "KINDS",
    "DocumentTruth",
    "PageTruth",
    "Prose",
    "Spec",
    "TableTruth",
    "spec_for",
    "truth_path",
]

_KIND_NAMES = """one-column two-column three-column ruled-table unruled-table lists footnotes
running hyphenation rotated scanned accented"""
KINDS: tuple[str, ...] = tuple(_KIND_NAMES.split())

TableKind = Literal["ruled", "unruled"]


@dataclass(slots=True)
class TableTruth:
    """One table: its cell texts row by row; the first ``header_rows`` rows are headers."""

    kind: TableKind
    rows: list[list[str]]
    header_rows: int = 1


@dataclass(slots=True)
class PageTruth:
    """What one page holds.

    ``body`` is the paragraphs (headings and list items included) in true reading order:
    full-width blocks first, then each column top to bottom, left to right; hyphenated
    words are written joined, footnote markers left out. Table cells, running headers
    and footers and footnotes are not part of ``body``. ``rotation`` is the page's
    /Rotate in degrees; ``scanned`` pages are an image with no text layer.
    """

    number: int
    body: list[str] = field(default_factory=list)
    tables: list[TableTruth] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    footers: list[str] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)
    list_items: list[str] = field(default_factory=list)
    hyphenated: list[str] = field(default_factory=list)
    columns: int = 1
    scanned: bool = False
    rotation: int = 0

    def all_text(self) -> list[str]:
        """Every piece of text on the page: body, table cells, headers, footers, footnotes."""
        cells = [cell for table in self.tables for row in table.rows for cell in row]
        return [*self.headers, *self.body, *cells, *self.footnotes, *self.footers]


@dataclass(slots=True)
class DocumentTruth:
    """One corpus PDF: its file name, the features it exercises and its pages."""

    name: str
    seed: int
    kinds: list[str]
    pages: list[PageTruth]

    @property
    def scanned(self) -> bool:
        return any(page.scanned for page in self.pages)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DocumentTruth:
        pages = []
        for raw in data["pages"]:
            tables = [TableTruth(**table) for table in raw.get("tables", [])]
            pages.append(PageTruth(**{**raw, "tables": tables}))
        return cls(name=data["name"], seed=data["seed"], kinds=data["kinds"], pages=pages)

    def save(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> DocumentTruth:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def truth_path(pdf: Path) -> Path:
    """Where the truth of ``pdf`` lives: ``name.pdf`` -> ``name.truth.json``."""
    return pdf.with_name(pdf.stem + ".truth.json")


@dataclass(slots=True)
class Spec:
    """The features one document exercises."""

    primary: str
    columns: int = 1
    tables: list[str] = field(default_factory=list)
    lists: bool = False
    footnotes: bool = False
    running: bool = False
    hyphenate: bool = False
    rotated: bool = False
    scanned: bool = False
    accented: bool = False
    paragraphs: int = 6

    def kinds(self) -> list[str]:
        """The tags written into the truth: layout, table kinds and the features present."""
        tags = [f"{self.columns}-column"] + [f"{kind}-table" for kind in sorted(set(self.tables))]
        flags = {"lists": self.lists, "footnotes": self.footnotes, "running": self.running}
        flags |= {"hyphenation": self.hyphenate, "rotated": self.rotated}
        flags |= {"scanned": self.scanned, "accented": self.accented}
        return tags + [flag for flag, on in flags.items() if on]


def spec_for(index: int, rng: random.Random) -> Spec:
    """The spec of document ``index``: its primary kind cycles through KINDS, extras are drawn."""
    primary = KINDS[index % len(KINDS)]
    spec = Spec(primary=primary, paragraphs=rng.randint(5, 9))
    layouts = {"one-column": 1, "two-column": 2, "three-column": 3}
    spec.columns = layouts.get(primary, rng.choice((1, 1, 2, 3)))
    if primary in ("ruled-table", "unruled-table", "rotated", "scanned"):
        spec.columns = 1
    if primary.endswith("-table"):
        spec.tables = [primary.removesuffix("-table")] * rng.randint(1, 2)
    elif spec.columns == 1 and primary != "scanned" and rng.random() < 0.25:
        spec.tables = [rng.choice(("ruled", "unruled"))]
    spec.lists = primary == "lists" or (primary != "scanned" and rng.random() < 0.3)
    spec.footnotes = primary == "footnotes" or (primary != "scanned" and rng.random() < 0.2)
    spec.running = primary == "running" or (
        primary not in ("scanned", "rotated") and rng.random() < 0.35
    )
    spec.hyphenate = primary == "hyphenation" or (primary != "scanned" and rng.random() < 0.2)
    spec.rotated, spec.scanned = primary == "rotated", primary == "scanned"
    spec.accented = primary == "accented" or rng.random() < 0.15
    if spec.running or spec.rotated:
        spec.paragraphs = rng.randint(12, 18)
    if spec.scanned:
        spec.paragraphs = rng.randint(4, 6)
    return spec


def _vocab(text: str) -> list[str]:
    return text.split()


_ADJECTIVES = _vocab(
    """annual regional careful quiet northern southern modest public private early late
final formal local national central coastal rural urban steady rapid gradual narrow broad
recent former current brief detailed general practical technical historic considerable
environmental international administrative remarkable substantial preliminary independent
comprehensive experimental operational agricultural industrial municipal seasonal"""
)
_NOUNS = _vocab("""committee council report budget harbour bridge library museum village district
survey schedule meeting proposal station railway market garden river valley school
hospital archive record figure measure method sample program project network office
account estimate forecast season region province treaty contract supplier customer
engineer teacher farmer director painter architect student visitor neighbour
infrastructure administration documentation investigation responsibility performance
construction maintenance transportation measurement development agreement""")
_VERBS = _vocab("""reviewed approved described examined published delayed extended improved
reported measured recorded compared repaired replaced visited organised prepared
questioned supported rejected announced completed collected estimated discussed""")
_ADVERBS = _vocab("""quietly slowly carefully formally briefly openly gradually eventually
repeatedly considerably approximately independently""")
_PREPOSITIONS = _vocab("before after during near beside across along within without under")
_CONNECTORS = _vocab("""However Meanwhile Moreover Later Nevertheless Afterwards Consequently
Initially""")
_NAMES = _vocab("Adams Baker Clarke Evans Foster Grant Hughes Irving Jensen Kelly Lawson Morgan")
_PLACES = _vocab("Leeds Bristol Dundee Galway Utrecht Bergen Aarhus Porto Turin Lyon Ghent Cork")
_ACCENTED_NAMES = _vocab("Müller Sørensen Dvořák Gonçalves Þórsdóttir Nuñez Lefèvre Åström")
_ACCENTED_PLACES = ["São Paulo", "Zürich", "Ærø", "Córdoba", "Malmö", "Kraków", "Besançon"]
_ACCENTED_WORDS = _vocab("café façade naïve résumé rôle déjà brûlée piñata")


def _plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") and noun[-2] not in "aeiou" else noun + "s"


class Prose:
    """Plausible English sentences, titles and table rows from a fixed vocabulary."""

    def __init__(self, rng: random.Random, *, accented: bool, latin1: bool = False) -> None:
        def keep(words: list[str]) -> list[str]:
            return [w for w in words if not latin1 or w.encode("latin-1", "ignore").decode() == w]

        self.rng = rng
        self.names = _NAMES + (keep(_ACCENTED_NAMES) if accented else [])
        self.places = _PLACES + (keep(_ACCENTED_PLACES) if accented else [])
        self.nouns = _NOUNS + (keep(_ACCENTED_WORDS) if accented else [])

    def _pick(self, words: list[str]) -> str:
        return self.rng.choice(words)

    def _phrase(self) -> str:
        adjective = f"{self._pick(_ADJECTIVES)} " if self.rng.random() < 0.6 else ""
        return f"the {adjective}{self._pick(self.nouns)}"

    def sentence(self) -> str:
        """One sentence ending with a full stop."""
        form = self.rng.randrange(4)
        if form == 0:
            text = f"{self._phrase()} {self._pick(_VERBS)} {self._phrase()}"
            text += f" {self._pick(_PREPOSITIONS)} {self._phrase()}"
        elif form == 1:
            text = f"{self._pick(_CONNECTORS)}, {self._phrase()} in {self._pick(self.places)}"
            text += f" was {self._pick(_ADVERBS)} {self._pick(_VERBS)}"
        elif form == 2:
            text = f"{self._pick(self.names)} {self._pick(_VERBS)} {self._phrase()} and"
            text += f" {self._pick(_VERBS)} {self._phrase()} {self._pick(_PREPOSITIONS)} spring"
        else:
            text = f"in {self.rng.randint(1950, 2025)} {self._phrase()} {self._pick(_VERBS)}"
            text += f" {self.rng.randint(2, 90)} {_plural(self._pick(self.nouns))}"
        return text[0].upper() + text[1:] + "."

    def paragraph(self, sentences: int) -> str:
        return " ".join(self.sentence() for _ in range(sentences))

    def title(self) -> str:
        words = [self._pick(_ADJECTIVES), self._pick(self.nouns), "of", self._pick(self.places)]
        return " ".join(word[0].upper() + word[1:] for word in words)

    def heading(self) -> str:
        return f"{self.rng.randint(1, 9)}. {self._pick(_ADJECTIVES).title()} {self._pick(_NOUNS)}"

    def table(self, rows: int, columns: int) -> list[list[str]]:
        """A header row and ``rows`` data rows: a place or name, then numbers and words."""
        header = ["Region", "Year", "Count", "Share", "Status"][:columns]
        body = []
        for _ in range(rows):
            row = [
                self._pick(self.places),
                str(self.rng.randint(1990, 2025)),
                f"{self.rng.randint(1, 9999):,}",
                f"{self.rng.uniform(0, 100):.1f}%",
                self._pick(_ADJECTIVES),
            ]
            body.append(row[:columns])
        return [header, *body]
