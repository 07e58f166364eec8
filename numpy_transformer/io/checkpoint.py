"""Checkpoints: a model's weights, its configuration and (optionally) the optimizer's state in one ``.npz``.

The file is a plain NumPy ``.npz`` archive that opens anywhere NumPy does, whatever device trained the model
(arrays are copied to the host first) and without pickle. Its entries:

- ``format``: the string ``"numpy_transformer.checkpoint/1"``;
- ``model/<key>``: each array of ``model.state_dict()``, under torch's key (``model/layers.0.linear1.weight``);
- ``config``: the model's configuration as a JSON string (or ``"null"``);
- ``optimizer/state/<position>/<name>``: the optimizer's per-parameter arrays, and ``optimizer/meta``: its
  param groups and step count as JSON; ``scheduler``: a scheduler's ``state_dict()`` as JSON.

Saving is atomic (:mod:`numpy_transformer.io.atomic`): the archive is written to a temporary file in the same
folder, flushed to disk, then renamed over ``path`` in one step (``os.replace``), so a crash leaves either the
old file or the new one, never half of one. A save that fails with an error removes its temporary file; one
killed outright (``kill -9``, a power cut) cannot, and leaves a hidden ``.nt-partial.*`` file, which the next
save or load in that folder recognises and removes. The file gets the usual permissions of a new file
(``0o644`` under the common umask), or keeps those of the file it replaces.

Loading is all-or-nothing: the whole archive is read and checked (a truncated or corrupted file, a missing
or unexpected key, a wrong shape) before the first array is written into the model or the optimizer; any
problem raises a ValueError that names the file, and leaves both unchanged.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any

import numpy as np

from .atomic import atomic_write, remove_stale_temporaries

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "load_config", "FORMAT"]

#: the value of the ``format`` entry of every checkpoint this module writes
FORMAT = "numpy_transformer.checkpoint/1"


def _json_string(value: Any, what: str) -> np.ndarray:
    try:
        return np.array(json.dumps(value))
    except TypeError as error:
        raise TypeError(f"{what}: got a value JSON cannot store ({error}); expected numbers, strings, lists, "
                        "dicts") from error


def save_checkpoint(path, model, config: dict | None = None, optimizer=None, scheduler=None) -> None:
    """Write ``model``'s weights (and ``config``, ``optimizer``, ``scheduler`` state) to ``path``, atomically.

    Inputs:
        path: the file to write (conventionally ending in ``.npz``); its folder must exist (an error names
            ``path`` when it does not).
        model: a :class:`~numpy_transformer.nn.Module`.
        config: a JSON-serializable dict describing how to rebuild the model (sizes, vocabulary ...), or None.
        optimizer: an :class:`~numpy_transformer.optim.Optimizer` whose state to save, or None.
        scheduler: a schedule with ``state_dict()`` (e.g. :class:`~numpy_transformer.optim.LambdaLR`), or None.
    """
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {"format": np.array(FORMAT), "config": _json_string(config, "config")}
    for key, value in model.state_dict().items():
        arrays[f"model/{key}"] = value
    if optimizer is not None:
        state = optimizer.state_dict()
        meta = {"param_groups": state["param_groups"], "step_count": state["step_count"],
                "type": type(optimizer).__name__}
        arrays["optimizer/meta"] = _json_string(meta, "optimizer")
        for position, entries in state["state"].items():
            for name, value in entries.items():
                arrays[f"optimizer/state/{position}/{name}"] = value
    if scheduler is not None:
        arrays["scheduler"] = _json_string(scheduler.state_dict(), "scheduler")

    # plain arrays only (allow_pickle=False): loading never unpickles
    atomic_write(path, lambda handle: np.savez(handle, allow_pickle=False, **arrays))


def read_checkpoint(path) -> dict:
    """Read and check a whole checkpoint into host memory, without touching any model.

    Returns:
        a dict with ``model`` (an OrderedDict key -> NumPy array), ``config`` (dict or None),
        ``optimizer`` (a state dict for ``Optimizer.load_state_dict``, or None) and ``scheduler`` (or None).

    Raises:
        FileNotFoundError when ``path`` does not exist; ValueError naming ``path`` when the file is not a
        complete, readable checkpoint.
    """
    path = os.fspath(path)
    remove_stale_temporaries(os.path.dirname(os.path.abspath(path)))
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: {path!r} does not exist; expected a checkpoint written by save_checkpoint")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}  # reads (and CRC-checks) every entry
    except Exception as error:  # a truncated or corrupted archive fails in many ways (zip, zlib, format)
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error}); the file is "
                         "truncated or corrupted") from error
    if "format" not in arrays or str(arrays["format"]) != FORMAT:
        raise ValueError(f"{path}: got no '{FORMAT}' format entry; expected a file written by save_checkpoint")
    try:
        config = json.loads(str(arrays["config"]))
        meta = json.loads(str(arrays["optimizer/meta"])) if "optimizer/meta" in arrays else None
        scheduler = json.loads(str(arrays["scheduler"])) if "scheduler" in arrays else None
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path}: got an unreadable JSON entry ({error}); the file is corrupted") from error

    model = OrderedDict((name[len("model/"):], value) for name, value in arrays.items() if name.startswith("model/"))
    optimizer = None
    if meta is not None:
        state: dict[int, dict[str, np.ndarray]] = {}
        for name, value in arrays.items():
            if name.startswith("optimizer/state/"):
                position, entry = name[len("optimizer/state/"):].split("/", 1)
                state.setdefault(int(position), {})[entry] = value
        optimizer = {"state": state, "param_groups": meta["param_groups"], "step_count": meta["step_count"],
                     "type": meta.get("type")}
        for group in optimizer["param_groups"]:  # JSON has no tuples
            if "betas" in group:
                group["betas"] = tuple(group["betas"])
    return {"model": model, "config": config, "optimizer": optimizer, "scheduler": scheduler}


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, strict: bool = True) -> dict | None:
    """Load a checkpoint into ``model`` (and ``optimizer``, ``scheduler``); return the saved config.

    Everything is read and checked first: the model's keys and shapes (all of them, listed in one error),
    and the optimizer's groups and shapes. Only when all are right is anything written, so on any error the
    model, the optimizer and the scheduler are exactly as before. Arrays are cast to each parameter's dtype
    and copied to its device.

    Inputs:
        path: a file written by :func:`save_checkpoint`.
        model: the Module to fill (built from the config, e.g. ``load_config(path)``), or None to only read.
        optimizer: an Optimizer over the same parameters, in the same order, or None.
        scheduler: a schedule to restore, or None.
        strict: whether missing or unexpected model keys are errors (as in ``load_state_dict``).
    """
    path = os.fspath(path)
    checkpoint = read_checkpoint(path)
    try:
        prepared_model = model._prepare_state(checkpoint["model"], strict) if model is not None else None
        prepared_optimizer = None
        if optimizer is not None:
            if checkpoint["optimizer"] is None:
                raise ValueError("optimizer: got none saved in the file; expected one (save with optimizer=)")
            if checkpoint["optimizer"]["type"] not in (None, type(optimizer).__name__):
                raise ValueError(
                    f"optimizer: the file holds {checkpoint['optimizer']['type']} state; expected "
                    f"{type(optimizer).__name__}"
                )
            prepared_optimizer = optimizer._prepare_state(checkpoint["optimizer"])
        if scheduler is not None:
            saved = checkpoint["scheduler"]
            if saved is None:
                raise ValueError("scheduler: got none saved in the file; expected one (save with scheduler=)")
            if len(saved.get("base_lrs", ())) != len(scheduler.base_lrs):
                raise ValueError(
                    f"scheduler: got {len(saved.get('base_lrs', ()))} base rates; expected {len(scheduler.base_lrs)}"
                )
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    if prepared_model is not None:
        model._assign_state(prepared_model[0])
    if prepared_optimizer is not None:
        optimizer._assign_state(prepared_optimizer)
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    return checkpoint["config"]


def load_config(path) -> dict | None:
    """The configuration dict saved with a checkpoint (None when it was saved without one)."""
    return read_checkpoint(path)["config"]

