"""The core never imports tkinter: only ui/ may (a headless machine must run the engine)."""

import subprocess
import sys


def test_core_packages_do_not_import_tkinter():
    code = (
        "import sys, app, app.cli.main, app.run.trainer, app.engine.finetune, app.explain.selection, models, loss, datasets\n"
        "import main\n"
        "assert 'tkinter' not in sys.modules, sorted(m for m in sys.modules if 'tk' in m)\n"
        "print('clean')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=str(__import__("pathlib").Path(__file__).parents[1])
    )
    assert result.returncode == 0, result.stderr
    assert "clean" in result.stdout
