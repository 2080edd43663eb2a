"""Document layout on a generated ground-truth corpus: our text-layer engine vs its peers.

The corpus (bench/doc_corpus, seed 2026, 60 PDFs) has one, two and three columns, ruled
and unruled tables, lists, footnotes, running headers and footers, hyphenated line ends,
rotated pages, scanned pages (150 dpi, noise, 0.5-1.5 degree skew, no text layer) and
accented text. It is written once into .servicegrid/doc-corpus/seed-2026/ and reused
while the generator's source is unchanged. Every engine runs in this process on the same
PDFs, one at a time:

- ours: servicegrid's TextLayerEngine (body, ruled and unruled tables, running lines,
  footnotes; scanned pages by OCR when Tesseract is installed, else n/a);
- pdfplumber: ``page.extract_text()``, body text only;
- pdfminer.six: ``extract_pages`` with default ``LAParams``, text boxes in its order;
- docling-parse: its text-line cells in the order it gives (``pip install docling-parse``;
  left out when not installed).

How to read it: reading order is 1 - word edit distance / length between the true body
text (paragraphs, headings and list items in reading order; no tables, running lines or
footnotes) and what the engine gives as body, per text page, averaged. Table cells match
on (row, column, normalized text). Running lines and footnotes (their mark left out) are
(page, text) pairs. Duplicated words are words of the truth emitted more often than they
occur, over all true words. OCR word accuracy is 1 - word edit distance / true words on
the scanned pages. An engine that does not produce an output is n/a for that metric.
Speed is pages per second on the text PDFs, the median of interleaved rounds after a
warm-up pass; OCR pages per second is one pass over the scanned PDFs.

    .venv/bin/python bench/bench_document_layout.py [--quick] [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.doc_corpus import KINDS, DocumentTruth, PageTruth, generate, truth_path  # noqa: E402
from bench.doc_corpus.peers import Extraction, PageExtraction, Peer, available_peers  # noqa: E402
from bench.doc_corpus.score import (  # noqa: E402
    Counts,
    duplicated_words,
    header_footer_pr,
    ocr_word_accuracy,
    reading_order_similarity,
    table_cell_f1,
    words,
)

from _common import table  # noqa: E402

SEED = 2026
COUNT = 60
QUICK_COUNT = len(KINDS)
SOURCES = [Path(__file__).resolve().parent / "doc_corpus" / f for f in ("generate.py", "truth.py")]
ROUNDS, QUICK_ROUNDS = 3, 1
# The truth holds a footnote's text without its mark; an engine's "1 Text" matches it.
NOTE_MARK = re.compile(r"^\s*(?:\d{1,3}|[¹²³⁴⁵⁶⁷⁸⁹*†‡§¶])\s*")


def fingerprint() -> str:
    """Changes whenever the generator or the truth schema does, so the corpus is rewritten."""
    return hashlib.sha256(b"".join(path.read_bytes() for path in SOURCES)).hexdigest()[:16]


def corpus(out: Path, count: int, seed: int = SEED) -> list[Path]:
    """The first ``count`` corpus PDFs in ``out``, generated unless already there."""
    manifest = out / "corpus.json"
    if manifest.exists():
        known = json.loads(manifest.read_text())
        paths = [out / name for name in known["files"][:count]]
        complete = all(p.exists() and truth_path(p).exists() for p in paths)
        if known["fingerprint"] == fingerprint() and len(paths) == count and complete:
            return paths
    paths = generate(out, seed=seed, count=count)
    record = {"seed": seed, "fingerprint": fingerprint(), "files": [p.name for p in paths]}
    manifest.write_text(json.dumps(record, indent=1) + "\n")
    return paths


@dataclass
class Tally:
    """One engine's scores summed over the corpus."""

    order: list[float] = field(default_factory=list)
    order_by: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    tables: defaultdict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    running: Counts = field(default_factory=Counts)
    duplicated: int = 0
    true_words: int = 0
    ocr: list[float] = field(default_factory=list)
    hyphenated: Counts = field(default_factory=Counts)
    footnotes: Counts = field(default_factory=Counts)
    failures: int = 0


def layout_of(page: PageTruth) -> str:
    if page.rotation:
        return "rotated pages"
    return f"{page.columns} column" + ("s" if page.columns > 1 else "")


def score(peer: Peer, truth: DocumentTruth, got: Extraction, tally: Tally) -> None:
    """Add one document's scores to ``tally``."""
    pages = got.pages + [PageExtraction() for _ in range(len(truth.pages) - len(got.pages))]
    true_lines, got_lines, true_notes, got_notes = [], [], [], []
    for page, found in zip(truth.pages, pages, strict=False):
        true_all, got_all = words(page.all_text()), words(found.all_text())
        tally.duplicated += duplicated_words(true_all, got_all)
        tally.true_words += len(true_all)
        if page.scanned:
            if peer.ocr:
                tally.ocr.append(ocr_word_accuracy(words(page.body), words(found.body)))
            continue
        similarity = reading_order_similarity(words(page.body), words(found.body))
        tally.order.append(similarity)
        tally.order_by[layout_of(page)].append(similarity)
        # Rejoined when the word is emitted as often as the page holds it, the split one included.
        expected, emitted = Counter(true_all), Counter(got_all)
        joined = sum(1 for word in words(page.hyphenated) if emitted[word] >= expected[word])
        tally.hyphenated += Counts(joined, 0, len(page.hyphenated))
        if peer.tables:
            for kind, counts in table_cell_f1(page.tables, found.tables or []).items():
                tally.tables[kind] += counts
        true_lines += [(page.number, text) for text in page.headers + page.footers]
        got_lines += [(page.number, text) for text in (found.headers or []) + (found.footers or [])]
        true_notes += [(page.number, text) for text in page.footnotes]
        got_notes += [(page.number, NOTE_MARK.sub("", text)) for text in found.footnotes or []]
    if peer.running_lines:
        tally.running += header_footer_pr(true_lines, got_lines)
    if peer.footnotes:
        tally.footnotes += header_footer_pr(true_notes, got_notes)


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


Getter = Callable[[Peer, Tally], float | None]


def quality_rows(peers: dict[str, Peer], tallies: dict[str, Tally]) -> list[list[object]]:
    def row(label: str, goal: str, get: Getter) -> list[object]:
        return [label, goal, *(fmt(get(peers[name], tallies[name])) for name in peers)]

    def cells(kind: str) -> Getter:
        return lambda p, t: t.tables[kind].f1 if p.tables and t.tables[kind].true else None

    def running(which: str) -> Getter:
        def get(peer: Peer, tally: Tally) -> float | None:
            if not peer.running_lines:
                return None
            value: float | None = getattr(tally.running, which)
            return 0.0 if value is None else value  # none reported: nothing right either

        return get

    return [
        row("reading order, body text", ">= 0.95", lambda p, t: mean(t.order)),
        row("table cell F1, ruled", ">= 0.9", cells("ruled")),
        row("table cell F1, unruled", ">= 0.9", cells("unruled")),
        row("header/footer precision", ">= 0.95", running("precision")),
        row("header/footer recall", ">= 0.95", running("recall")),
        row("duplicated-word rate", "0", lambda p, t: t.duplicated / max(t.true_words, 1)),
        row("OCR word accuracy, scanned", ">= 0.95", lambda p, t: mean(t.ocr) if p.ocr else None),
    ]


def detail_rows(peers: dict[str, Peer], tallies: dict[str, Tally]) -> list[list[object]]:
    layouts = sorted({key for tally in tallies.values() for key in tally.order_by})
    rows: list[list[object]] = []
    for layout in layouts:
        pages = len(next(iter(tallies.values())).order_by[layout])
        values = [fmt(mean(tallies[name].order_by[layout])) for name in peers]
        rows.append([f"reading order, {layout} ({pages} pages)", *values])
    rows.append(
        ["hyphenated words rejoined", *(fmt(t.hyphenated.recall) for t in tallies.values())]
    )
    for which in ("precision", "recall"):
        values = [
            fmt(getattr(tallies[name].footnotes, which)) if peer.footnotes else "n/a"
            for name, peer in peers.items()
        ]
        rows.append([f"footnote {which} (page, text)", *values])
    spurious = [
        str(tallies[name].tables["spurious"].got) if peer.tables else "n/a"
        for name, peer in peers.items()
    ]
    rows.append(["cells of tables found where there is none", *spurious])
    rows.append(["documents that failed", *(str(t.failures) for t in tallies.values())])
    return rows


def speed_rows(
    peers: dict[str, Peer],
    docs: list[tuple[bytes, int]],
    scans: list[tuple[bytes, int]],
    rounds: int,
) -> list[list[object]]:
    """Pages per second on the text PDFs, median of ``rounds`` interleaved rounds; OCR once."""
    rates: defaultdict[str, list[float]] = defaultdict(list)
    pages = sum(count for _, count in docs)
    for _ in range(rounds):
        for name, peer in peers.items():
            seconds = sum(peer.extract(data).seconds for data, _ in docs)
            rates[name].append(pages / seconds)
    base = statistics.median(rates["pdfplumber"])
    rows: list[list[object]] = []
    for name, peer in peers.items():
        rate = statistics.median(rates[name])
        goal = ">= 0.9" if name == "ours" else ""
        rows.append([f"{peer.label}, text PDFs", f"{rate:.1f}", f"{rate / base:.2f}", goal])
    ours = peers["ours"]
    ocr = "n/a"
    if ours.ocr and scans:
        seconds = sum(ours.extract(data).seconds for data, _ in scans)
        ocr = f"{sum(count for _, count in scans) / seconds:.2f}"
    rows.append([f"{ours.label} OCR, scanned PDFs", ocr, "", "reported"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one PDF of each kind, one round")
    parser.add_argument("--out", type=Path, default=ROOT / ".servicegrid" / "doc-corpus")
    parser.add_argument(
        "--seed", type=int, default=SEED, help="another corpus: a check the engine was not tuned on"
    )
    args = parser.parse_args()
    count = QUICK_COUNT if args.quick else COUNT
    paths = corpus(args.out / f"seed-{args.seed}", count, args.seed)
    peers = available_peers()
    tallies = {name: Tally() for name in peers}
    text_docs: list[tuple[bytes, int]] = []
    scans: list[tuple[bytes, int]] = []
    for path in paths:
        data, truth = path.read_bytes(), DocumentTruth.load(truth_path(path))
        (scans if truth.scanned else text_docs).append((data, len(truth.pages)))
        for name, peer in peers.items():
            try:
                got = peer.extract(data)
            except Exception as exc:  # an engine failing on one PDF is a score, not a stop
                print(f"{name} failed on {path.name}: {exc!r}", file=sys.stderr)
                tallies[name].failures += 1
                got = Extraction(name, [], 0.0)
            score(peer, truth, got, tallies[name])
    text_pages, scanned = (sum(count for _, count in docs) for docs in (text_docs, scans))
    print(f"corpus seed {args.seed}: {len(paths)} PDFs, {text_pages} text pages, ", end="")
    print(f"{scanned} scanned pages\n")
    labels = [peer.label for peer in peers.values()]
    print(table(["metric", "goal", *labels], quality_rows(peers, tallies)))
    print()
    print(table(["detail", *labels], detail_rows(peers, tallies)))
    print()
    rounds = QUICK_ROUNDS if args.quick else ROUNDS
    headers = ["pages/s (CPU, one at a time)", "pages/s", "vs pdfplumber extract_text", "goal"]
    print(table(headers, speed_rows(peers, text_docs, scans, rounds)))


if __name__ == "__main__":
    main()
