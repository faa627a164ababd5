"""One self-contained page per batch: ``report.html``, every artefact's figure (embedded as
PNG data), table and caption, the claims, and the provenance of the records behind them.

Nothing is fetched when the page opens: images are ``data:`` URIs and the style is inline,
so the file can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import html
import os
import platform
import time
from pathlib import Path

import mistune
import pandas as pd

from ..run.records import atomic_write_text, find_runs, pool_draw_of, pool_draws_text
from ..run.records import provenance as run_provenance
from .artefacts import ARTEFACTS
from .registry import _hardware

_MARKDOWN = mistune.create_markdown(plugins=["table"])
_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}th{background:#f2f2f2}
img{max-width:100%;border:1px solid #eee}section{border-top:2px solid #ddd;margin-top:2em}
code{background:#f5f5f5;padding:0 .2em}.prov td:first-child{font-weight:600}"""


def _md(text: str) -> str:
    return _MARKDOWN(text)


def _png(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


# The caption bullets that say where an artefact's numbers come from: the page states them
# once, for every artefact, at its top.
PROVENANCE_BULLETS = ("- Profile:", "- Dataset:", "- Hardware:", "- Date:", "- Records:",
                      "- Command:", "- Files:")


def _title(name: str, figures: Path) -> str | None:
    caption = figures / f"{ARTEFACTS[name].stem}.caption.md"
    return caption.read_text().partition("\n")[0].lstrip("# ") if caption.exists() else None


def verdicts(figures: Path) -> list[str]:
    """The claims' verdicts, one Markdown line each, family-wise verdict first: from the
    study's claims if the batch built them, else from the claims artefact's."""
    from .claims import read_claims, verdict_lines
    from .study import verdict_lines as study_lines

    if (figures / "study_claims.csv").exists():
        return study_lines(pd.read_csv(figures / "study_claims.csv"))
    if (figures / "claims.json").exists():
        return verdict_lines(read_claims(figures / "claims.json"))
    return []


def artefact_section(name: str, figures: Path) -> str | None:
    """The HTML of one artefact (``<section id=NAME>``), or None when it wrote nothing here:
    its title, figure, table and caption text, without the provenance bullets the page gives
    once."""
    stem = ARTEFACTS[name].stem
    caption, table = figures / f"{stem}.caption.md", figures / f"{stem}.md"
    png = figures / f"{stem}.png"
    if not caption.exists():
        return None
    parts = [f'<section id="{html.escape(name)}" data-artefact="{html.escape(name)}">']
    text = caption.read_text()
    title, _, rest = text.partition("\n")
    rest = "\n".join(ln for ln in rest.splitlines() if not ln.startswith(PROVENANCE_BULLETS))
    parts.append(f"<h2>{html.escape(title.lstrip('# '))}</h2>")
    if png.exists():
        parts.append(_png(png))
    if table.exists():
        parts.append(_md(table.read_text()))
    parts.append(_md(rest))
    parts.append("</section>")
    return "\n".join(parts)


def provenance(records: str | os.PathLike) -> list[tuple[str, str]]:
    """(what, value) rows: package commits, run dates, hardware and torch of the records."""
    runs = find_runs(records)
    commits = sorted({str(r.get("git_commit"))[:10] for r in runs})
    dates = sorted(str(r.get("finished"))[:10] for r in runs if r.get("finished"))
    torch = sorted({str(r.get("torch_version")) for r in runs})
    return [("records", f"{len(runs)} finished runs in {records}"),
            ("package commits", ", ".join(commits) or "unknown"),
            ("runs finished", f"{dates[0]} to {dates[-1]}" if dates else "unknown"),
            ("hardware", _hardware(pd.DataFrame([run_provenance(r) for r in runs]))),
            ("torch", ", ".join(torch) or "unknown"),
            ("pool draws", _pool_draws(runs)),
            ("page built", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
                           f"{platform.node() or 'this machine'}")]


def _pool_draws(runs: list[dict]) -> str:
    """How many distinct pools the runs drew, per pool size (the sha256 of the drawn indices
    that each config.json records; older records do not)."""
    return pool_draws_text(((run.get("data") or {}).get("pool", {}).get("size"), pool_draw_of(run),
                            run.get("seed"), run.get("run_id", i))
                           for i, run in enumerate(runs)) or "unknown"


def write_page(path: str | os.PathLike, *, figures: str | os.PathLike,
               records: str | os.PathLike, artefacts: list[str], commands: list[str],
               title: str) -> Path:
    """Write the batch's ``report.html`` (see the module doc).

    Args:
        path: the page to write.
        figures: the folder the artefacts wrote into.
        records: the run records they read (for the provenance).
        artefacts: the batch's artefact names, in order; one ``<section>`` each.
        commands: the commands that made the batch, shown verbatim.
        title: the page's heading.

    Returns:
        The page's path.
    """
    figures = Path(figures)
    built = {a: artefact_section(a, figures) for a in artefacts}  # each read and encoded once
    sections = [s for s in built.values() if s]
    missing = [a for a, s in built.items() if s is None]
    rows = provenance(records) + [("commands", "<br>".join(
        f"<code>{html.escape(c)}</code>" for c in commands))]
    prov = "".join(f"<tr><td>{html.escape(k)}</td><td>{v if k == 'commands' else html.escape(v)}"
                   f"</td></tr>" for k, v in rows)
    toc = "".join(f'<li><a href="#{html.escape(a)}">{html.escape(_title(a, figures))}</a></li>'
                  for a in artefacts if a not in missing)
    lines = verdicts(figures)
    body = [f"<h1>{html.escape(title)}</h1>"]
    if lines:
        body += ['<section id="verdicts"><h2>Verdicts</h2>',
                 _md("Each claim at each budget, the family-wise verdict first (Holm over every "
                     "row), then the per-claim one, the mean with its 95% interval, n and the "
                     "hypothesis; the claims table below has the details.\n\n"
                     + "\n".join(f"- {ln}" for ln in lines)), "</section>"]
    body += [f"<h2>Contents</h2><ul>{toc}</ul>",
             "<h2>Provenance</h2><p>For every artefact on this page: the records, their "
             "package commits, machines and dates, and the command that built the page.</p>",
             f'<table class="prov">{prov}</table>']
    if missing:
        body.append(f"<p>Not built in this batch: {html.escape(', '.join(missing))}.</p>")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body + sections) + "\n</body></html>\n")
    return atomic_write_text(Path(path), page)
