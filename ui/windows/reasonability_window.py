"""The reasonability window: GRADIA's 2 x 2 matrix of the model's explanations.

Rows: accurate / inaccurate (prediction right or wrong); columns: reasonable / unreasonable
explanation (rules in `app.explain.reasonability`). Each cell shows how many images fell in it, their
share of the judged pool, and the images (relpaths, most unreasonable first). "Accurate but
unreasonable" is the cell to worry about: right for the wrong reason -- a shortcut.

It only displays a `ReasonabilityReady` event; the trainer computed it, this window runs no model.
With `on_paint(relpaths)`, each cell has a "Paint these" button (its selected images, or all
listed when none is selected) and a double-click paints one image: the main window adds them
to the brush window of the round.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Callable, Dict, Optional, Sequence

from app.run import messages as msg
from ui.helpers.window_geometry import GeometryStore
from ui.tk_support.window_placement import restore_and_remember

ROWS = (("accurate", "Accurate", True), ("inaccurate", "Inaccurate", False))
COLUMNS = (("reasonable", "Reasonable", True), ("unreasonable", "Unreasonable", False))
CELL_COLOURS = {  # background of each cell's count
    "accurate_reasonable": "#dff3df",
    "accurate_unreasonable": "#ffe3c2",
    "inaccurate_reasonable": "#eeeeee",
    "inaccurate_unreasonable": "#f8d4d4",
}
CELL_HINTS = {
    "accurate_reasonable": "right, for the right reason",
    "accurate_unreasonable": "right for the wrong reason: paint these",
    "inaccurate_reasonable": "wrong, but looking at the right place",
    "inaccurate_unreasonable": "wrong, looking at the wrong place",
}
LIST_HEIGHT = 10
SHORT_LIST_HEIGHT = 4  # on a 720 px screen: the whole matrix, buttons included, still fits
WRAP = 620


def reasonable_rule(thresholds) -> str:
    """One line saying what 'reasonable' means, with the thresholds of `app.explain.reasonability`."""
    return (
        f"Reasonable: with a mask, under {thresholds.red_share:.0%} of the saliency on red, on green "
        f"{thresholds.green_lift:g}x its area or more; without one, an unreasonable score under "
        f"{thresholds.score:.0%} (the largest share on regions painted red elsewhere, salient in "
        f"every class, or off the object)."
    )


class ReasonabilityWindow(tk.Toplevel):
    """Shows one `msg.ReasonabilityReady`; `show(event)` replaces it with a newer one."""

    def __init__(
        self,
        master: tk.Misc,
        event: msg.ReasonabilityReady,
        *,
        on_paint: Optional[Callable[[Sequence[str]], object]] = None,
        geometry_store: Optional[GeometryStore] = None,
    ) -> None:
        super().__init__(master)
        self.on_paint = on_paint
        self.paint_buttons: Dict[str, ttk.Button] = {}
        self.event: Optional[msg.ReasonabilityReady] = None
        self.count_labels: Dict[str, ttk.Label] = {}
        self.share_labels: Dict[str, ttk.Label] = {}
        self.lists: Dict[str, tk.Listbox] = {}
        self.more_labels: Dict[str, ttk.Label] = {}
        self.transient(master.winfo_toplevel())
        self._build()
        self.bind("<Escape>", lambda _e: self.destroy())
        self.show(event)
        restore_and_remember(self, "reasonability", geometry_store)  # the size the user left it at

    def _build(self) -> None:
        outer = ttk.Frame(self, padding=12)
        outer.pack(fill="both", expand=True)
        self.header_label = ttk.Label(outer, font=("TkDefaultFont", 12, "bold"))
        self.header_label.pack(anchor="w")
        self.pool_label = ttk.Label(outer, wraplength=WRAP, justify="left")
        self.pool_label.pack(anchor="w", pady=(2, 0))
        self.rule_label = ttk.Label(outer, wraplength=WRAP, justify="left", foreground="#555555")
        self.rule_label.pack(anchor="w", pady=(4, 8))

        # The footnote and Close first, from the bottom: a short screen squeezes the table (its
        # lists scroll), never them (the footnote was clipped at 1280 x 720).
        self.close_button = ttk.Button(outer, text="Close", command=self.destroy)
        self.close_button.pack(side="bottom", anchor="e", pady=(8, 0))
        self.judged_label = ttk.Label(outer, wraplength=WRAP, justify="left", foreground="#555555")
        self.judged_label.pack(side="bottom", anchor="w", pady=(8, 0))
        table = ttk.Frame(outer)
        table.pack(fill="both", expand=True)
        for column, (_, title, _) in enumerate(COLUMNS, start=1):
            ttk.Label(table, text=title, font=("TkDefaultFont", 11, "bold")).grid(row=0, column=column, pady=(0, 4))
            table.columnconfigure(column, weight=1, uniform="cells")
        for row, (row_key, row_title, _) in enumerate(ROWS, start=1):
            ttk.Label(table, text=row_title, font=("TkDefaultFont", 11, "bold")).grid(
                row=row, column=0, sticky="n", padx=(0, 8), pady=8
            )
            table.rowconfigure(row, weight=1)
            for column, (column_key, _, _) in enumerate(COLUMNS, start=1):
                cell = f"{row_key}_{column_key}"
                self._build_cell(table, cell).grid(row=row, column=column, sticky="nsew", padx=4, pady=4)

    def _build_cell(self, master: tk.Misc, cell: str) -> ttk.Frame:
        frame = ttk.Frame(master, relief="groove", padding=6)
        top = tk.Frame(frame, background=CELL_COLOURS[cell])
        top.pack(fill="x")
        count = tk.Label(top, font=("TkDefaultFont", 18, "bold"), background=CELL_COLOURS[cell])
        count.pack(side="left", padx=(6, 8), pady=2)
        share = tk.Label(top, font=("TkDefaultFont", 11), background=CELL_COLOURS[cell])
        share.pack(side="left", pady=2)
        ttk.Label(frame, text=CELL_HINTS[cell], foreground="#555555").pack(anchor="w", pady=(2, 4))
        box = ttk.Frame(frame)
        box.pack(fill="both", expand=True)
        rows = LIST_HEIGHT if self.winfo_screenheight() >= 900 else SHORT_LIST_HEIGHT
        listbox = tk.Listbox(box, height=rows, width=28, activestyle="none", exportselection=False, selectmode="extended")
        scrollbar = ttk.Scrollbar(box, orient="vertical", command=listbox.yview)
        listbox.configure(yscrollcommand=scrollbar.set)
        listbox.pack(side="left", fill="both", expand=True)
        scrollbar.pack(side="left", fill="y")
        more = ttk.Label(frame, foreground="#555555")
        more.pack(anchor="w")
        if self.on_paint is not None:
            button = ttk.Button(frame, text="Paint these", command=lambda c=cell: self.paint(c))
            button.pack(anchor="e", pady=(4, 0))
            self.paint_buttons[cell] = button
            listbox.bind("<Double-Button-1>", lambda _e, c=cell: self.paint(c, only_active=True))
        self.count_labels[cell], self.share_labels[cell] = count, share
        self.lists[cell], self.more_labels[cell] = listbox, more
        return frame

    def paint(self, cell: str, only_active: bool = False) -> None:
        """Hand the cell's selected images (all listed, when none is) to `on_paint`."""
        listbox = self.lists[cell]
        if only_active:
            chosen = [listbox.get("active")] if listbox.size() else []
        else:
            chosen = [listbox.get(i) for i in listbox.curselection()] or list(listbox.get(0, "end"))
        if chosen and self.on_paint is not None:
            self.on_paint(tuple(chosen))

    def show(self, event: msg.ReasonabilityReady) -> None:
        """Display `event`'s matrix (replacing what was shown)."""
        self.event = event
        matrix = event.matrix
        total = matrix.n_images
        self.title(f"Reasonability of explanations — round {event.round}")
        self.header_label.configure(text=f"Before feedback round {event.round} (after epoch {event.epoch})")
        sample = "all" if total >= event.n_train else "a random sample"
        self.pool_label.configure(
            text=f"{total} of {event.n_train} training images judged ({sample}), vanilla-gradient saliency of the true class."
        )
        self.rule_label.configure(text=reasonable_rule(matrix.thresholds))
        for cell, count_label in self.count_labels.items():
            count = int(matrix.counts.get(cell, 0))
            members = tuple(matrix.members.get(cell, ()))
            count_label.configure(text=str(count))
            self.share_labels[cell].configure(text=f"{count / total:.0%} of the images" if total else "no images")
            listbox = self.lists[cell]
            listbox.delete(0, "end")
            if members:
                listbox.insert("end", *members)
            hidden = count - len(members)
            self.more_labels[cell].configure(text=f"... and {hidden} more" if hidden > 0 else "")
        judged = len(matrix.judged_by_mask)
        self.judged_label.configure(
            text=f"{judged} image{'' if judged == 1 else 's'} judged against their own mask "
            "(painted or propagated); the others by the unreasonable score, a heuristic."
        )
