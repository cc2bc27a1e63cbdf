"""Markdown tables, as the report, the model card, and the review and sweep commands write them."""

from __future__ import annotations


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table: ``header``, its rule, then one line per row of cells (already text)."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
