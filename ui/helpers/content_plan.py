"""What the user decided in a content-propagation preview: pure state, tested without a display.

The preview (`ui.windows.content_preview_window`) shows where the painted content was found. The user
drops images from the plan (their find is wrong or unwanted) and marks finds as "not this" (a
correction the locator learns from on the next preview). `ContentPlanChoices` keeps both and
builds the commands for the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Set, Tuple

import numpy as np

from app.run import messages as msg


@dataclass
class ContentPlanChoices:
    """Dropped images and "not this" corrections of one propagation's sources."""

    sources: Tuple[str, ...]
    dropped: Set[str] = field(default_factory=set)
    corrected: Dict[str, np.ndarray] = field(default_factory=dict)  # relpath -> region marked "not this"

    def toggle(self, relpath: str, keep: bool) -> None:
        """Keep `relpath` in the plan, or drop it."""
        if keep:
            self.dropped.discard(relpath)
        else:
            self.dropped.add(relpath)

    def not_this(self, item: msg.PreviewItem) -> msg.MarkNotThis:
        """Mark `item`'s found region as wrong: it leaves the plan, and the command saving the
        correction is returned (send it before the next preview)."""
        self.corrected[item.relpath] = item.region
        self.dropped.add(item.relpath)
        return msg.MarkNotThis(item.relpath, np.asarray(item.region, dtype=bool))

    def kept(self, preview: msg.PropagationPreview) -> int:
        """How many of the preview's images Apply would write."""
        return sum(1 for relpath in preview.relpaths if relpath not in self.dropped)

    def preview_command(self) -> msg.PreviewPropagation:
        return msg.PreviewPropagation(self.sources, "content", tuple(sorted(self.dropped)))

    def apply_command(self, plan_id: int = 0) -> msg.ApplyPropagation:
        """Apply the reviewed plan `plan_id` less the dropped images (0: plan afresh)."""
        return msg.ApplyPropagation(self.sources, "content", tuple(sorted(self.dropped)), plan_id=plan_id)
