"""Handlers the harness packs into TorchServe model archives (one module per archive).

Each is a module-level `handle(data, context)`: TorchServe calls it with `data=None` once when
the worker loads the model, then with a batch (a list of request dicts) per inference. They
use no torch, so a worker's cost is TorchServe's own.
"""

HANDLERS = ("echo", "delay", "broken_import", "broken_init")
