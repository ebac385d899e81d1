"""Where the audit's figures come from: the data read and the rule configuration used."""

from __future__ import annotations

from html import escape
from typing import Any

from streams.audit.glossary import PARAMETERS
from streams.audit.report_cells import count_text, html_table


def input_section(inp: dict[str, Any]) -> str:
    """Return what the audit read: files, events by kind, duplicates, dead letters."""
    rows = [
        ["format", escape(inp["format"])],
        ["files", escape(", ".join(inp["files"]))],
        ["facility time zone", escape(inp["facility_timezone"])],
        ["events read", count_text(sum(inp["events_by_kind"].values()))],
        *([f"&nbsp;&nbsp;{escape(k)}", count_text(v)] for k, v in inp["events_by_kind"].items()),
        ["duplicates (ignored)", count_text(inp["duplicates"])],
        ["ignored (other codes, drugs, preliminary)", count_text(sum(inp["ignored"].values()))],
        ["dead letters (not usable, see dead_letters.ndjson)", count_text(inp["dead_letters"])],
        *([f"&nbsp;&nbsp;{escape(k)}", count_text(v)] for k, v in inp["invalid"].items()),
        *(
            [f"&nbsp;&nbsp;feed: {escape(k)}", count_text(v)]
            for k, v in inp["adapter_rejected"].items()
        ),
        ["patients", count_text(inp["patients"])],
    ]
    return "<h2>Data read</h2>" + html_table(["what", "count"], rows)


def config_section(cfg: dict[str, Any], rule_version: str) -> str:
    """Return every rule parameter with its value and meaning."""
    rows = []
    for key, value in cfg.items():
        if isinstance(value, dict):
            shown = "<br>".join(
                f"{escape(str(k))}: {escape(', '.join(map(str, v)))}" for k, v in value.items()
            )
        elif isinstance(value, list):
            shown = escape(", ".join(map(str, value)))
        else:
            shown = escape(str(value).lower() if isinstance(value, bool) else str(value))
        meaning = escape(PARAMETERS.get(key, ""))
        rows.append([f"<code>{escape(key)}</code>", shown, meaning])
    table = html_table(["parameter", "value", "meaning"], rows).replace("<td>", '<td class="t">')
    return (
        f"<h2>Configuration used</h2><p>Rule version <code>{escape(rule_version)}</code> "
        "(the same stamp is on every alert). Every rule parameter:</p>"
        + table.replace("<th>", '<th class="t">')
    )
