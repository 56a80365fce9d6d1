"""Rebuild the ``bench/manuals`` retrieval set's corpus from the PDF manuals that Debian packages install.

The manuals come from a fixed list of packages (found with ``dpkg -L``; ``--pdf PATH`` adds more).
Each page's text layer is read with pypdfium2; pages with almost no text (title or blank pages) are
left out, and the others become one corpus line each, ``{"_id": "<manual>-p<page>", "title", "text"}``
with the true 1-based page number. ``manifest.json`` records where every manual came from.

The hand-written ``queries.jsonl`` and ``qrels/test.tsv`` are never touched: the script checks that
every judged corpus id is still in the rebuilt corpus, and writes nothing when one is missing.

    apt-get install -y nettle-dev fontconfig bzip2-doc valgrind
    .venv/bin/python bench/manuals/build.py

The output is deterministic: the same packages and the same pypdfium2 give byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import logging
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("bench.manuals")

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Manual:
    """A manual shipped by a Debian package: the package, the PDF's file name, a short slug and a title."""

    package: str
    filename: str
    slug: str
    title: str
    hyphenates_words: bool = True  # whether its typesetter splits words at line ends (TeX does)


# The four manuals of the set. The file name is matched with or without a trailing ".gz". Valgrind's
# manual is set by Apache FOP without hyphenation: a hyphen that ends one of its lines is always real.
MANUALS = (
    Manual("nettle-dev", "nettle.pdf", "nettle", "Nettle Manual"),
    Manual("fontconfig", "fontconfig-user.pdf", "fontconfig-user", "Fontconfig user manual (fonts.conf)"),
    Manual("bzip2-doc", "manual.pdf", "bzip2", "bzip2 and libbzip2 manual"),
    Manual("valgrind", "valgrind_manual.pdf", "valgrind", "Valgrind Documentation", hyphenates_words=False),
)

MIN_CHARS = 200  # pages with less text than this (after normalising) are left out
MAX_BYTES = 3_000_000  # past this, the largest manual is cut to a contiguous page range from its start

# pdfium marks a hyphen at the end of a line (TeX's or FOP's hyphenation, or a real hyphen that happens
# to end a line) with U+FFFE (get_text_range) or \x02 (get_text_bounded), and drops the line break.
_SOFT_HYPHEN = re.compile(r"([\w-]*)[\ufffe\x02]([\w-]*)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")
# An option broken after its leading dashes ("--\nlog-file"): the line break is not a space.
_BROKEN_OPTION = re.compile(r"(?<![^\s(\[])(--?)\r?\n(?=[a-z])")
_DOT_LEADER = re.compile(r"\s*(?:\.\s?){4,}\s*")  # table-of-contents dot leaders
_SPACING_DIAERESIS = re.compile(r"\u00a8([A-Za-z])")  # TeX's "M¨oller" for "Möller"
_WORD = re.compile(r"[A-Za-z0-9](?:[\w-]*[A-Za-z0-9])?")


@dataclass
class Source:
    """One PDF to read, and what the manifest says about it."""

    path: Path
    slug: str
    title: str
    package: str | None
    version: str | None
    pages: list[tuple[int, str]] = field(default_factory=list)  # (1-based page, normalised text), kept
    page_count: int = 0
    sha256: str = ""
    page_range: tuple[int, int] | None = None  # set when the manual was cut to fit MAX_BYTES
    hyphenates_words: bool = True


class BuildError(Exception):
    """The corpus cannot be built as asked; the message says what to do."""


def main(argv: list[str] | None = None) -> int:
    """Build the corpus and manifest; returns the process exit code."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        summary = build(args.out, extra_pdfs=args.pdf, min_chars=args.min_chars, max_bytes=args.max_bytes)
    except BuildError as exc:
        logger.error("%s", exc)
        return 1
    print(summary)
    return 0


def build(out: Path, *, extra_pdfs: list[Path], min_chars: int, max_bytes: int) -> str:
    """Find the manuals, read their pages, check the qrels and write ``corpus.jsonl`` and ``manifest.json``.

    Args:
        out: The dataset folder (its ``qrels/test.tsv``, if any, is checked against the new corpus).
        extra_pdfs: More PDFs (``.pdf`` or ``.pdf.gz``) to add after the fixed manuals.
        min_chars: Pages whose normalised text is shorter than this are left out.
        max_bytes: The most bytes ``corpus.jsonl`` may have; past it the largest manual is cut.

    Returns:
        A one-line summary of what was written.

    Raises:
        BuildError: A package or PDF is missing, or a judged corpus id is not in the new corpus.
    """
    sources = find_sources(extra_pdfs)
    for source in sources:
        read_source(source, min_chars)
        logger.info(
            "%s: %d of %d pages kept (%s)", source.slug, len(source.pages), source.page_count, source.path
        )
    lines = fit_to_size(sources, max_bytes)
    corpus_ids = {json.loads(line)["_id"] for line in lines}
    check_qrels(out, corpus_ids)

    out.mkdir(parents=True, exist_ok=True)
    corpus_bytes = "".join(line + "\n" for line in lines).encode("utf-8")
    (out / "corpus.jsonl").write_bytes(corpus_bytes)
    (out / "manifest.json").write_text(
        json.dumps(manifest(sources, min_chars), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    per_manual = ", ".join(f"{s.slug} {len(s.pages)}" for s in sources)
    return f"wrote {out / 'corpus.jsonl'}: {len(lines)} pages ({per_manual}), {len(corpus_bytes)} bytes"


def find_sources(extra_pdfs: list[Path]) -> list[Source]:
    """The fixed manuals found through ``dpkg -L``, then the extra PDFs given on the command line.

    Raises:
        BuildError: A package is not installed, or is installed without its PDF.
    """
    sources: list[Source] = []
    missing_packages: list[str] = []
    missing_files: list[str] = []
    for manual in MANUALS:
        files = _dpkg_files(manual.package)
        if files is None:
            missing_packages.append(manual.package)
            continue
        found = sorted(f for f in files if Path(f).name in (manual.filename, manual.filename + ".gz"))
        if not found or not Path(found[0]).is_file():
            missing_files.append(manual.package)
            continue
        path = Path(found[0])
        sources.append(
            Source(
                path,
                manual.slug,
                manual.title,
                manual.package,
                _version(manual.package),
                hyphenates_words=manual.hyphenates_words,
            )
        )
    if missing_packages:
        raise BuildError(
            f"package(s) not installed: {' '.join(missing_packages)}; "
            f"run: apt-get install -y {' '.join(missing_packages)}"
        )
    if missing_files:
        raise BuildError(
            f"package(s) installed without their PDF manual: {' '.join(missing_files)} (is /usr/share/doc "
            "excluded in /etc/dpkg/dpkg.cfg.d/?); after allowing it, run: "
            f"apt-get install -y --reinstall {' '.join(missing_files)}"
        )
    slugs = {s.slug for s in sources}
    for pdf in extra_pdfs:
        if not pdf.is_file():
            raise BuildError(f"--pdf {pdf}: no such file")
        slug = _slug(pdf)
        if slug in slugs:
            raise BuildError(f"--pdf {pdf}: its slug {slug!r} is already taken by another manual")
        slugs.add(slug)
        package = _owner(pdf)
        version = _version(package) if package else None
        sources.append(Source(pdf.resolve(), slug, "", package, version))
    return sources


def read_source(source: Source, min_chars: int) -> None:
    """Read every page's text layer into ``source.pages`` (those with at least ``min_chars`` characters).

    Raises:
        BuildError: pypdfium2 is missing or cannot open the PDF.
    """
    try:
        import pypdfium2 as pdfium
    except ImportError as exc:
        raise BuildError(
            "pypdfium2 is not installed for this Python; use .venv/bin/python or pip install pypdfium2"
        ) from exc
    data = source.path.read_bytes()
    if source.path.suffix == ".gz":
        data = gzip.decompress(data)
    source.sha256 = hashlib.sha256(data).hexdigest()
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise BuildError(f"{source.path}: pdfium cannot open it ({exc})") from exc
    try:
        if not source.title:
            source.title = (document.get_metadata_value("Title") or "").strip() or source.slug
        raw_pages = []
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            try:
                raw_pages.append(textpage.get_text_bounded())
            finally:
                textpage.close()
                page.close()
    finally:
        document.close()
    source.page_count = len(raw_pages)
    vocabulary = _vocabulary(raw_pages)
    for number, raw in enumerate(raw_pages, start=1):
        text = normalise(raw, vocabulary, hyphenates_words=source.hyphenates_words)
        if len(text) >= min_chars:
            source.pages.append((number, text))
        else:
            logger.debug("%s page %d left out: %d characters", source.slug, number, len(text))


def normalise(raw: str, vocabulary: Counter[str], *, hyphenates_words: bool = True) -> str:
    """A page's text on one line: hyphenation undone, whitespace runs and dot leaders collapsed.

    Args:
        raw: The page's text layer as pdfium gives it.
        vocabulary: Word counts of the whole manual, which decide whether a hyphen that ended a line
            belongs to the word ("gen-suppressions") or only split it ("back-ground").
        hyphenates_words: Whether the typesetter split words at line ends; when not, every hyphen that
            ended a line is kept.

    Returns:
        The normalised text; words are otherwise left as they are.
    """

    def rejoin(match: re.Match[str]) -> str:
        left, right = match.group(1), match.group(2)
        joined, hyphenated = (left + right).strip("-_").lower(), f"{left}-{right}".strip("-_").lower()
        if right.isdigit() and match.end() == len(match.string.rstrip()):
            return f"{left}- {right}"  # the word goes on over the page; what follows is the page number
        if not hyphenates_words:
            keep = True
        elif vocabulary[hyphenated] != vocabulary[joined]:
            keep = vocabulary[hyphenated] > vocabulary[joined]
        else:  # no evidence: keep it in options and compounds, or between two words the manual uses
            keep = (
                left.startswith("-")
                or "-" in left.strip("-")
                or "-" in right
                or (_is_word(left, vocabulary) and _is_word(right, vocabulary))
            )
        logger.debug("line-end hyphen: %s", left + ("-" if keep else "") + right)
        return left + ("-" if keep else "") + right

    text = _SOFT_HYPHEN.sub(rejoin, raw)
    text = _BROKEN_OPTION.sub(r"\1", text)
    text = _CONTROL.sub(" ", text)
    text = _SPACING_DIAERESIS.sub(lambda m: unicodedata.normalize("NFC", m.group(1) + "\u0308"), text)
    text = _DOT_LEADER.sub(" ... ", text)
    return " ".join(text.split())


def fit_to_size(sources: list[Source], max_bytes: int) -> list[str]:
    """The corpus lines, with the largest manual cut to a contiguous page range from its start if needed."""

    def lines_of(source: Source) -> list[str]:
        return [
            json.dumps(
                {"_id": f"{source.slug}-p{number}", "title": f"{source.title} — page {number}", "text": text},
                ensure_ascii=False,
            )
            for number, text in source.pages
        ]

    per_source = [lines_of(s) for s in sources]
    total = sum(len(line.encode("utf-8")) + 1 for lines in per_source for line in lines)
    if total > max_bytes:
        largest = max(range(len(sources)), key=lambda i: sum(len(x) for x in per_source[i]))
        source, lines = sources[largest], per_source[largest]
        while lines and total > max_bytes:
            total -= len(lines.pop().encode("utf-8")) + 1
            source.pages.pop()
        if not source.pages:
            raise BuildError(f"the corpus cannot fit in {max_bytes} bytes even without {source.slug}")
        source.page_range = (source.pages[0][0], source.pages[-1][0])
        logger.warning(
            "%s cut to pages %d-%d to keep the corpus under %d bytes",
            source.slug,
            *source.page_range,
            max_bytes,
        )
    return [line for lines in per_source for line in lines]


def check_qrels(out: Path, corpus_ids: set[str]) -> None:
    """Fail when a judged corpus id of ``out/qrels/test.tsv`` is not in the new corpus.

    Raises:
        BuildError: Some judged ids are missing; nothing has been written yet.
    """
    qrels = out / "qrels" / "test.tsv"
    if not qrels.is_file():
        logger.warning("%s: not there, so no judgement was checked", qrels)
        return
    with qrels.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    judged = [(row[0], row[1]) for row in rows[1:] if len(row) >= 2]
    missing = sorted({f"{query} -> {doc}" for query, doc in judged if doc not in corpus_ids})
    if missing:
        raise BuildError(
            f"{qrels}: {len(missing)} judged page(s) are not in the rebuilt corpus, so nothing was written "
            f"(re-judge them, or build into another folder with --out to compare): {', '.join(missing)}"
        )
    queries = out / "queries.jsonl"
    if queries.is_file():
        query_ids = {
            json.loads(line)["_id"] for line in queries.read_text(encoding="utf-8").splitlines() if line
        }
        unjudged = sorted(query_ids - {query for query, _ in judged})
        if unjudged:
            logger.warning("queries without judgements: %s", ", ".join(unjudged))
    logger.info("%s: all %d judgements point at pages of the corpus", qrels, len(judged))


def manifest(sources: list[Source], min_chars: int) -> dict[str, Any]:
    """What the corpus was built from: each PDF's path, package, version, page count and sha256."""
    try:
        from pypdfium2 import version as pdfium_version

        extractor = f"pypdfium2 {pdfium_version.PYPDFIUM_INFO} (pdfium {pdfium_version.PDFIUM_INFO})"
    except ImportError:  # pypdfium2 before 4.x kept its versions elsewhere
        extractor = "pypdfium2"
    manuals = []
    for source in sources:
        entry: dict[str, Any] = {
            "slug": source.slug,
            "title": source.title,
            "path": str(source.path),
            "package": source.package,
            "version": source.version,
            "page_count": source.page_count,
            "pages_kept": len(source.pages),
            "sha256": source.sha256,
        }
        if source.page_range is not None:
            entry["page_range"] = list(source.page_range)
            entry["note"] = "cut to this contiguous page range to keep corpus.jsonl under its size limit"
        manuals.append(entry)
    return {
        "extractor": extractor,
        "text": f"page text layer (get_text_bounded); pages under {min_chars} characters left out",
        "manuals": manuals,
    }


def _vocabulary(raw_pages: list[str]) -> Counter[str]:
    text = " ".join(raw_pages)
    text = re.sub(r"[\w-]*[\ufffe\x02][\w-]*", " ", text)  # the words in question don't vote
    return Counter(word.lower() for word in _WORD.findall(text))


def _is_word(part: str, vocabulary: Counter[str]) -> bool:
    """Whether ``part`` is a word of its own in the manual (not a syllable): long enough and used."""
    return len(part) >= 4 and vocabulary[part.lower()] >= 1


def _dpkg_files(package: str) -> list[str] | None:
    try:
        result = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise BuildError(
            "dpkg is not on this machine; the manuals are found through Debian's packages"
        ) from exc
    return result.stdout.splitlines() if result.returncode == 0 else None


def _version(package: str) -> str | None:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def _owner(path: Path) -> str | None:
    try:
        result = subprocess.run(
            ["dpkg", "-S", str(path.resolve())], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return None
    if result.returncode != 0 or ":" not in result.stdout:
        return None
    return result.stdout.split(":", 1)[0].split(",")[0].strip()


def _slug(path: Path) -> str:
    name = path.name.removesuffix(".gz").removesuffix(".pdf")
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "manual"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="the dataset folder (default: this script's)")
    parser.add_argument(
        "--pdf",
        type=Path,
        action="append",
        default=[],
        help="another PDF (.pdf or .pdf.gz) to add; repeatable",
    )
    parser.add_argument("--min-chars", type=int, default=MIN_CHARS, help="leave out pages with less text")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES, help="size limit of corpus.jsonl")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every page left out")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
