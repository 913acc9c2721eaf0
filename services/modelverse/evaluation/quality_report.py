"""Markdown tables of the quality benchmark's rows, and their place in the docs.

Generated sections sit between marker comments, so rerunning the benchmark replaces them and
leaves the hand-written text around them alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

MODALITY_TITLES = {
    "text": "Text queries (one hand-written description per model)",
    "image": "Image queries (held-out real pictures, one per query)",
    "sketch": "Sketch queries (line drawings of the same pictures)",
    "image_set": "Image-set queries (a group's pictures together)",
    "model": "Model queries (similar models; relevant = shares a tag)",
}
METRICS = ("top1", "top5", "top10", "map5", "map10", "map_all")
METRIC_TITLES = ("top-1", "top-5", "top-10", "mAP@5", "mAP@10", "mAP@all")

Row = dict[str, object]


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _rows(rows: Sequence[Row], **match: object) -> list[Row]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def _scorers(rows: Sequence[Row], modality: str) -> list[str]:
    seen: list[str] = []
    for row in _rows(rows, modality=modality):
        if row["scorer"] not in seen:
            seen.append(str(row["scorer"]))
    return seen


def headline_table(rows: Sequence[Row], samples: Sequence[int]) -> str:
    """top-1 / mAP@10 of every modality and scorer at every sample count."""
    header = "| queries | method | " + " | ".join(f"N = {n:,}" for n in samples) + " |"
    lines = [header, "|" + "---|" * (2 + len(samples))]
    for modality in MODALITY_TITLES:
        for scorer in _scorers(rows, modality):
            cells = []
            for n in samples:
                found = _rows(rows, modality=modality, scorer=scorer, queries="all", samples=n)
                cells.append(f"{_cell(found[0]['top1'])} / {_cell(found[0]['map10'])}" if found else "")
            count = _rows(rows, modality=modality, scorer=scorer, queries="all")
            label = f"{modality} ({count[0]['count']})" if count else modality
            lines.append(f"| {label} | {scorer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def full_tables(rows: Sequence[Row], samples: Sequence[int]) -> str:
    """Every metric, per modality, scorer and sample count; then by query source at the largest N."""
    out: list[str] = []
    largest = max(samples)
    for modality, title in MODALITY_TITLES.items():
        if not _rows(rows, modality=modality):
            continue
        out += [f"### {title}", "", "| method | N | " + " | ".join(METRIC_TITLES) + " |",
                "|" + "---|" * (2 + len(METRICS))]
        for scorer in _scorers(rows, modality):
            for n in samples:
                for row in _rows(rows, modality=modality, scorer=scorer, queries="all", samples=n):
                    out.append(f"| {scorer} | {n:,} | " + " | ".join(_cell(row[m]) for m in METRICS) + " |")
        sources = sorted({str(r["queries"]) for r in _rows(rows, modality=modality)} - {"all"})
        if len(sources) > 1:
            out += ["", f"By query source, N = {largest:,} (top-1 / mAP@10; count of queries in brackets):", "",
                    "| method | " + " | ".join(sources) + " |", "|" + "---|" * (1 + len(sources))]
            for scorer in _scorers(rows, modality):
                cells = []
                for source in sources:
                    found = _rows(rows, modality=modality, scorer=scorer, queries=source, samples=largest)
                    cells.append(
                        f"{_cell(found[0]['top1'])} / {_cell(found[0]['map10'])} ({found[0]['count']})" if found else ""
                    )
                out.append(f"| {scorer} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def temperature_table(rows: Sequence[Row]) -> str:
    """top-1 / top-5 / mAP@10 of the tau-dependent scores at each tau."""
    taus = sorted({float(r["tau"]) for r in rows})  # type: ignore[arg-type]
    lines = ["| queries | method | " + " | ".join(f"tau = {t:g}" for t in taus) + " |", "|" + "---|" * (2 + len(taus))]
    for modality in ("text", "image"):
        for scorer in _scorers(rows, modality):
            cells = []
            for tau in taus:
                found = _rows(rows, modality=modality, scorer=scorer, tau=tau)
                cells.append(" / ".join(_cell(found[0][m]) for m in ("top1", "top5", "map10")) if found else "")
            lines.append(f"| {modality} | {scorer} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n(top-1 / top-5 / mAP@10)"


def replace_section(path: Path, name: str, body: str, heading: str) -> None:
    """Put ``body`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``;
    a file without the markers gets ``heading`` and the marked section appended."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip() + ("\n\n" if text else "") + f"{heading}\n\n{block}\n"
    path.write_text(text)
