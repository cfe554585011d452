"""The README's screenshot of the mask import dialog, checked and previewing a COCO file.

    Xvfb :58 -screen 0 1600x1000x24 &
    DISPLAY=:58 PYTHONPATH=. .venv/bin/python docs/make_import_screenshot.py --coco masks.json --data demo/train

Opens `ui.windows.mask_import_dialog.MaskImportDialog` for `--data` with a throwaway mask folder, picks
`--coco` (e.g. a session's `masks export --format coco`), presses Check, waits for the preview
and shoots the dialog with ImageMagick's `import` into docs/screenshot_import.png.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import tkinter as tk
from pathlib import Path

from datasets import MaskStore
from ui.windows.mask_import_dialog import MaskImportDialog

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot_import.png"))
    args = parser.parse_args()
    root = tk.Tk()
    root.geometry("1x1+1500+950")  # the dialog is transient for it: shown, but out of the way
    with tempfile.TemporaryDirectory() as masks:
        dialog = MaskImportDialog(root, args.data, MaskStore(masks))
        dialog.set_source(args.coco)
        dialog.check_button.invoke()

        def shoot() -> None:
            if dialog.plan is None:
                root.after(200, shoot)
                return
            dialog.geometry("+20+20")
            root.update()
            root.after(300)
            root.update()
            subprocess.run(["import", "-window", dialog.wm_frame(), args.out], check=True)
            root.quit()

        root.after(200, shoot)
        root.mainloop()
    print(args.out)


if __name__ == "__main__":
    main()
