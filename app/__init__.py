"""The core behind the desktop app and the command line. No tkinter here.

Subpackages, each importing only those before it (tests/test_architecture.py checks it):

- `app.explain`: explanations and the choices built on them (saliency, how reasonable an
  explanation is, which images to show, where painted content is found in other images);
- `app.engine`: training and fine-tuning (configs, the guided step, loops, checkpoints,
  mixed precision, data-parallel processes);
- `app.run`: the protocol the UI and the command line drive (the trainer thread, its messages
  and states, sessions and their locks, the driver that consumes a trainer's events);
- `app.cli`: the command line.

`app.errors` (what counts as the user's mistake) is shared by all of them. Below `app` lie
`datasets`, `models` and `loss`, in that order. Each package face imports a public name's module
on first use (PEP 562), so the torch-free modules (configs, messages, the parser) stay quick.
"""
