"""A session's report as one self-contained HTML file: every picture inlined, no script, no
outside resource, so it can be mailed to a reviewer and opened in any browser, offline.

Sections: what was trained on what (data, model, settings), the headline numbers, the training
curves with the rounds marked, every round (what was painted, how far it propagated, before and
after heatmaps of the painted images, validation / shortcut-broken / test accuracy before and
after, steps and why it stopped, committed or rejected), and the final model's confusion matrix.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from app.engine.finetune_report import STOP_REASON_TEXT
from app.report import figures
from app.report.session_facts import RoundFacts, SessionFacts, gather
from datasets.atomic_files import atomic_open

DECISIONS = {
    "commit": ("committed", "good"),
    "reject": ("rejected", "bad"),
    "cancelled": ("cancelled (nothing fine-tuned)", "neutral"),
    "skipped": ("skipped (nothing painted)", "neutral"),
    "stopped": ("stopped before a decision", "neutral"),
}
SHOWN_NAMES = 12  # painted image names listed per round

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1d2330;
       margin: 0; background: #f4f5f7; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 10px;
     border-bottom: 1px solid #dde1e7; padding-bottom: 4px; } h3 { font-size: 16px; margin: 0; }
.muted { color: #5d6675; } .small { font-size: 12px; }
table { border-collapse: collapse; } td, th { padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
table.facts th { color: #5d6675; font-weight: 500; white-space: nowrap; }
table.numbers td, table.numbers th { padding: 3px 14px 3px 0; }
table.numbers td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0; }
.card { border: 1px solid #dde1e7; border-radius: 8px; padding: 10px 14px; min-width: 150px; }
.card .value { font-size: 22px; font-weight: 600; } .card .label { color: #5d6675; font-size: 12px; }
.round { border: 1px solid #dde1e7; border-radius: 8px; padding: 14px 16px; margin: 14px 0; }
.round header { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; margin-bottom: 8px; }
.badge { border-radius: 10px; padding: 1px 9px; font-size: 12px; font-weight: 600; }
.badge.good { background: #dff3e4; color: #17692f; } .badge.bad { background: #fbe3e1; color: #9b1c12; }
.badge.neutral { background: #eceef2; color: #4a5261; }
.up { color: #17692f; } .down { color: #9b1c12; }
.strip { display: flex; flex-wrap: wrap; gap: 14px; margin-top: 10px; }
.panel { font-size: 11px; color: #4a5261; } .panel img { width: 120px; height: auto; image-rendering: pixelated;
  border-radius: 3px; } .panel .row { display: flex; gap: 3px; } .panel .heads { display: flex; gap: 3px; }
.panel .heads span { width: 120px; text-align: center; }
table.confusion td { width: 34px; height: 28px; text-align: center; padding: 0; font-size: 12px;
  font-variant-numeric: tabular-nums; border: 1px solid #fff; }
table.confusion th { font-weight: 500; color: #5d6675; padding: 0 6px; text-align: center; }
img.plot { max-width: 100%; }
.problem { background: #fff6e0; border: 1px solid #f0d48a; border-radius: 6px; padding: 6px 10px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(png: bytes, alt: str, css: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}"{f" class={chr(34)}{css}{chr(34)}" if css else ""}>'


def _pct(value: Any) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) and math.isfinite(value) else "–"


def _number(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "–"


def _change(before: Any, after: Any, percent: bool = True, higher_is_better: bool = True) -> str:
    """ "a -> b" with the difference coloured by whether it is better."""
    show = _pct if percent else _number
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (before, after)):
        return f"{show(before)} → {show(after)}"
    delta = after - before
    better = (delta > 0) == higher_is_better
    css = "" if abs(delta) < 1e-12 else ("up" if better else "down")
    sign = "+" if delta >= 0 else "−"
    amount = f"{100 * abs(delta):.1f} points" if percent else f"{abs(delta):.3f}"
    return f'{show(before)} → {show(after)} <span class="{css}">({sign}{amount})</span>'


def _facts_table(rows: Iterable[tuple]) -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows if v not in (None, ""))
    return f'<table class="facts">{cells}</table>'


def _last(history: Sequence[Dict[str, Any]], key: str) -> Optional[float]:
    for record in reversed(history):
        value = record.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def _header(facts: SessionFacts) -> str:
    return (
        f"<h1>Session report: {_e(facts.folder.name)}</h1>"
        f'<div class="muted">{_e(facts.folder)} · started {_e(facts.created)} · '
        f"{facts.epochs_done} epochs · {len(facts.rounds)} feedback rounds</div>"
    )


def _summary(facts: SessionFacts) -> str:
    decided = [r.decision for r in facts.rounds]
    cards = [
        (f"{decided.count('commit')} / {len(decided)}", "rounds committed"),
        (str(facts.mask_sources.get("painted", 0)), "images painted by hand"),
        (str(facts.mask_sources.get("propagated", 0)), "masks propagated"),
    ]
    if facts.mask_sources.get("imported"):
        cards.append((str(facts.mask_sources["imported"]), "masks imported"))
    for key, label in (
        ("val_accuracy", "validation accuracy"),
        ("val_broken_accuracy", "shortcut-broken validation"),
        ("val_test_accuracy", "test accuracy"),
    ):
        value = _last(facts.epoch_history, key)
        if value is not None:
            cards.append((_pct(value), f"{label} (last epoch)"))
    body = "".join(f'<div class="card"><div class="value">{_e(v)}</div><div class="label">{_e(k)}</div></div>' for v, k in cards)
    return f'<div class="cards">{body}</div>'


def _setup(facts: SessionFacts) -> str:
    config = facts.train_config
    val = facts.val_dir or f"{100 * config.get('val_fraction', 0.2):.0f} % of the training folder (seed {config.get('seed', 0)})"
    counts = ", ".join(f"{name}: {n}" for name, n in facts.class_counts.items())
    data = _facts_table(
        [
            ("training folder", _e(facts.train_dir)),
            ("validation", _e(val)),
            ("shortcut-free test folder", _e(facts.test_dir) if facts.test_dir else "none"),
            ("classes", _e(", ".join(facts.classes)) if facts.classes else "–"),
            ("training images per class", _e(counts)),
        ]
    )
    lam = config.get("lam")
    model = _facts_table(
        [
            ("model", _e(facts.model_name)),
            ("input size", f"{facts.input_size} px" if facts.input_size else "–"),
            ("guidance loss", _e(f"{config.get('guidance')} (λ = {lam if lam is not None else 'default'})")),
            ("counterexamples", "red regions swapped with other images'" if config.get("counterexamples") else "off"),
            ("epochs, batch, learning rate", _e(f"{config.get('epochs')}, {config.get('batch_size')}, {config.get('lr')}")),
            ("feedback", _e(f"every {config.get('feedback_every')} epochs, {config.get('images_per_round')} images a round")),
            ("images chosen by", _e(config.get("selection"))),
        ]
    )
    every = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
        for k, v in sorted({**config, **{f"finetune.{k}": v for k, v in facts.finetune_config.items()}}.items())
    )
    return (
        '<h2>Data and model</h2><div class="cards"><div>' + data + "</div><div>" + model + "</div></div>"
        f'<details><summary class="muted">every setting</summary><table class="facts small">{every}</table></details>'
    )


def _round_numbers(report: Dict[str, Any]) -> str:
    rows = [
        ("validation accuracy", _change(report.get("val_accuracy_before"), report.get("val_accuracy_after"))),
        ("validation loss", _change(report.get("val_loss_before"), report.get("val_loss_after"), False, False)),
    ]
    if report.get("broken_accuracy_before") is not None:
        found = report.get("broken_found")
        rows.append(
            (
                "shortcut-broken validation",
                _change(report.get("broken_accuracy_before"), report.get("broken_accuracy_after"))
                + (f' <span class="muted small">(painted content found in {found} validation images)</span>' if found else ""),
            )
        )
    else:
        rows.append(("shortcut-broken validation", '<span class="muted">none (nothing painted red)</span>'))
    if report.get("test_accuracy_before") is not None:
        rows.append(("test accuracy", _change(report.get("test_accuracy_before"), report.get("test_accuracy_after"))))
    rows += [
        ("saliency on red", _change(report.get("red_share_before"), report.get("red_share_after"), True, False)),
        ("saliency on green", _change(report.get("green_share_before"), report.get("green_share_after"))),
        ("guidance loss", _change(report.get("guidance_before"), report.get("guidance_after"), False, False)),
        (
            "steps, stop",
            _e(f"{report.get('steps')} steps; {STOP_REASON_TEXT.get(report.get('stop_reason'), report.get('stop_reason'))}")
            + f' <span class="muted small">({_number(report.get("seconds"), 1)} s)</span>',
        ),
        ("verdict", _e(report.get("verdict", "–"))),
    ]
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts numbers">{cells}</table>'


def _strip(panels: List[Dict[str, Any]]) -> str:
    if not panels:
        return '<p class="muted small">No before/after heatmaps were recorded for this round.</p>'
    items = []
    for panel in panels:
        painted, before, after = figures.panel_images(panel)
        predicted_before, confidence_before = panel["before"]
        predicted_after, confidence_after = panel["after"]
        items.append(
            '<div class="panel"><div class="heads"><span>painted</span><span>before</span><span>after</span></div>'
            f'<div class="row">{_img(painted, "painted " + panel["relpath"])}{_img(before, "heatmap before")}'
            f"{_img(after, 'heatmap after')}</div>"
            f"<div>{_e(panel['relpath'])} · true {_e(panel['true'])} · predicted {_e(predicted_before)} "
            f"({_pct(confidence_before)}) → {_e(predicted_after)} ({_pct(confidence_after)})</div></div>"
        )
    return '<div class="strip">' + "".join(items) + "</div>"


def _round(item: RoundFacts) -> str:
    text, css = DECISIONS.get(item.decision, (item.decision, "neutral"))
    names = ", ".join(item.painted[:SHOWN_NAMES]) + (
        f" and {len(item.painted) - SHOWN_NAMES} more" if len(item.painted) > SHOWN_NAMES else ""
    )
    lines = [f"<div>Painted {len(item.painted)} images{': ' + _e(names) if names else ''}.</div>"]
    masks = item.masks_at_finetune
    if masks is not None:
        lines.append(
            f"<div>Fine-tuned on {sum(masks.values())} masks: {masks.get('painted', 0)} painted by hand, "
            f"{masks.get('propagated', 0)} propagated, {masks.get('imported', 0)} imported.</div>"
        )
    else:  # a round recorded before the masks were counted: what the masks say now
        lines.append(
            f"<div>{item.propagated} propagated masks now name this round's images among their sources; "
            f"{item.masks_total} masks in the session after the round.</div>"
        )
    body = "".join(lines)
    if item.report:
        body += _round_numbers(item.report) + _strip(item.panels)
    return (
        f'<section class="round"><header><h3>Round {item.number}</h3><span class="muted">after epoch {item.epoch}</span>'
        f'<span class="badge {css}">{_e(text)}</span><span class="muted small">{_e(item.time)}</span></header>{body}</section>'
    )


def _confusion(facts: SessionFacts) -> str:
    confusion = facts.confusion
    if confusion is None:
        return ""
    biggest = max((max(row) for row in confusion.matrix), default=1) or 1
    head = "<tr><th></th>" + "".join(f"<th>{_e(c)}</th>" for c in confusion.classes) + "</tr>"
    rows = []
    for i, row in enumerate(confusion.matrix):
        cells = []
        for j, count in enumerate(row):
            strength = count / biggest
            colour = f"rgba(23,105,47,{0.08 + 0.85 * strength:.2f})" if i == j else f"rgba(155,28,18,{0.05 + 0.9 * strength:.2f})"
            colour = colour if count else "#f6f7f9"
            ink = "#fff" if strength > 0.55 else "#1d2330"
            cells.append(f'<td style="background:{colour};color:{ink}">{count}</td>')
        rows.append(f"<tr><th>{_e(confusion.classes[i])}</th>{''.join(cells)}</tr>")
    return (
        "<h2>Final model: confusion matrix</h2>"
        f'<p class="muted">On the {_e(confusion.split)}: accuracy {_pct(confusion.accuracy)}. '
        "Rows: true class; columns: predicted.</p>"
        f'<table class="confusion">{head}{"".join(rows)}</table>'
    )


def render(facts: SessionFacts) -> str:
    """The report's HTML text."""
    parts = [_header(facts)]
    for problem in facts.problems:
        parts.append(f'<p class="problem">{_e(problem)}</p>')
    parts += [_summary(facts), _setup(facts)]
    if facts.epoch_history:
        parts.append(
            "<h2>Training</h2>" + _img(figures.curves(facts.epoch_history, facts.rounds), "loss and accuracy per epoch", "plot")
        )
        parts.append('<p class="muted small">Vertical lines: feedback rounds (solid green: committed; dashed grey: not).</p>')
    parts.append("<h2>Feedback rounds</h2>")
    parts += [_round(item) for item in facts.rounds] or ['<p class="muted">No feedback round yet.</p>']
    parts.append(_confusion(facts))
    title = f"Session report: {facts.folder.name}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head><body><main>{''.join(parts)}</main></body></html>\n"
    )


def write_report(
    session_folder: str | os.PathLike, out: str | os.PathLike, *, with_model: bool = True, device_name: str = "cpu"
) -> Path:
    """Gather the session's facts, render them and write the HTML file atomically; its path."""
    text = render(gather(session_folder, with_model=with_model, device_name=device_name))
    out = Path(out)
    with atomic_open(out, "w", encoding="utf-8") as stream:
        stream.write(text)
    return out
