"""The command line (`main.py COMMAND` or the `saliency-steering` command): train, evaluate,
finetune, demo-data, discover, select, propagate, masks, report. The desktop app's command is
handed to `ui` by `main.py`; nothing here imports tkinter.

The parser (`main.build_parser`, `arguments`, `training_arguments`) imports no torch, so every
`--help` is quick; a command's module (`workflow`, `masks`, `report`) is imported, torch and all,
by its `common.LazyHandler` when the command runs.
"""
