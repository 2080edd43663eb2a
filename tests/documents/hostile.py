"""A corpus of malformed and hostile PDF inputs, built deterministically from a good PDF."""

from __future__ import annotations

import random
import zlib


def _pdf(objects: list[bytes], *, root: int = 1) -> bytes:
    """A PDF with these objects (numbered from 1), a real xref table and trailer."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        root,
        xref,
    )
    return bytes(out)


def _page_tree(count: bytes, kids: bytes, contents: bytes = b"") -> bytes:
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>"
    stream = b"<< /Length %d >>\nstream\n" % len(contents) + contents + b"\nendstream"
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Count " + count + b" /Kids " + kids + b" >>",
            page,
            stream,
        ]
    )


def hostile_inputs(good: bytes, *, seed: int = 20261123) -> list[tuple[str, bytes]]:
    """(label, bytes) pairs: at least 200 inputs no PDF service should fall over on."""
    rng = random.Random(seed)
    corpus: list[tuple[str, bytes]] = []
    for i in range(60):
        corpus.append((f"random bytes {i}", rng.randbytes(rng.choice([1, 7, 100, 4_096, 65_536]))))
    for i in range(10):
        corpus.append(
            (f"header then noise {i}", b"%PDF-1.7\n" + rng.randbytes(rng.randint(0, 5_000)))
        )
    for i in range(60):
        cut = max(1, int(len(good) * (i + 1) / 62))
        corpus.append((f"truncated at {cut}", good[:cut]))
    for i in range(50):
        flipped = bytearray(good)
        for _ in range(rng.choice([1, 10, 100, 1_000])):
            flipped[rng.randrange(9, len(flipped))] = rng.randrange(256)
        corpus.append((f"corrupted {i}", bytes(flipped)))
    for count in (b"0", b"-1", b"1000000", b"2147483647", b"99999999999999999999", b"/Name"):
        corpus.append((f"page count {count.decode()}", _page_tree(count, b"[3 0 R]")))
    corpus.append(("pages tree with a cycle", _page_tree(b"1", b"[2 0 R]")))
    corpus.append(("page is its own kid", _page_tree(b"2", b"[3 0 R 3 0 R]")))
    corpus.append(("kids not an array", _page_tree(b"1", b"3 0 R")))
    corpus.append(("kids point nowhere", _page_tree(b"1", b"[99 0 R]")))
    many_kids = b"[" + b"3 0 R " * 20_000 + b"]"
    corpus.append(("20,000 references to one page", _page_tree(b"20000", many_kids)))
    for depth in (100, 1_000, 10_000, 100_000):
        corpus.append(
            (
                f"array nested {depth} deep",
                _page_tree(b"1", b"[3 0 R]", b"[" * depth + b"]" * depth),
            )
        )
        nested = b"<< /A " * depth + b"1" + b" >>" * depth
        corpus.append(
            (
                f"dictionary nested {depth} deep",
                _pdf(
                    [
                        b"<< /Type /Catalog /Pages 2 0 R /X " + nested + b" >>",
                        b"<< /Type /Pages /Count 0 /Kids [] >>",
                    ]
                ),
            )
        )
    operators = [
        b"BT /F1 12 Tf 10 10 Td (x) Tj ET",
        b"q " * 5_000,
        b"Q " * 5_000,
        b"1 0 0 1 0 0 cm " * 5_000,
    ]
    for i, ops in enumerate(operators):
        corpus.append((f"odd content stream {i}", _page_tree(b"1", b"[3 0 R]", ops)))
    bomb = zlib.compress(b"0" * 20_000_000, 9)
    corpus.append(
        (
            "compressed stream of 20 MB",
            _pdf(
                [
                    b"<< /Type /Catalog /Pages 2 0 R >>",
                    b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
                    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
                    b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb)
                    + bomb
                    + b"\nendstream",
                ]
            ),
        )
    )
    corpus.append(
        ("media box of zeros", _page_tree(b"1", b"[3 0 R]").replace(b"[0 0 612 792]", b"[0 0 0 0]"))
    )
    corpus.append(
        (
            "media box huge",
            _page_tree(b"1", b"[3 0 R]").replace(b"[0 0 612 792]", b"[0 0 1e30 1e30]"),
        )
    )
    corpus.append(
        ("xref offset past the end", good.replace(b"startxref", b"startxref\n999999999\n%%", 1))
    )
    corpus.append(("only the header", b"%PDF-1.4"))
    corpus.append(("nul bytes after the header", b"%PDF-1.4\n" + b"\0" * 10_000))
    corpus.append(("header late in the file", b"x" * 2_000 + good))
    corpus.append(("two documents glued", good + good))
    corpus.append(("good document reversed", good[::-1]))
    return corpus
