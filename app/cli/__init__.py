"""The command line (`main.py COMMAND` or the `saliency-steering` command): train, evaluate,
finetune, select, propagate, demo-data. The desktop app's command is handed to `ui` by
`main.py`; nothing here imports tkinter."""
