"""A Hugging Face model id (``org/name``) resolved to the config.json in the local Hugging Face cache.

Nothing is downloaded and ``huggingface_hub`` is not needed: the cache folder is ``$HF_HUB_CACHE``,
else ``$HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub``, else
``~/.cache/huggingface/hub`` (huggingface_hub's own order, less its deprecated names), and a model
is ``models--{org}--{name}/snapshots/<revision>/config.json`` there, ``refs/main`` naming the
revision. Without ``refs/main`` the one snapshot there is taken; several, and the id is ambiguous.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from opbsim.errors import InputError

__all__ = ["is_model_id", "hub_cache_dir", "cached_config"]

# Hub repository names: letters, digits, "-", "_", "."; neither part starts with "." (so "./x"
# and "../x" stay paths) nor holds "--" (the cache's separator).
_ID = re.compile(r"(?!.*--)[A-Za-z0-9_-][\w.-]{0,95}/[A-Za-z0-9_-][\w.-]{0,95}")


def is_model_id(text: str) -> bool:
    """Whether ``text`` has the form of a Hub model id, ``org/name``."""
    return _ID.fullmatch(text) is not None


def hub_cache_dir() -> Path:
    """The folder the Hugging Face hub caches models in, from the environment (see the module)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub"
    return Path("~/.cache/huggingface/hub").expanduser()


def cached_config(model_id: str) -> Path | None:
    """The config.json of ``model_id``'s cached revision; None when the cache has no folder for it.
    A folder with no usable snapshot, or several and no ``refs/main``, is an ``InputError``."""
    org, name = model_id.split("/")
    folder = hub_cache_dir() / f"models--{org}--{name}"
    if not folder.is_dir():
        return None
    snapshots = folder / "snapshots"
    ref = folder / "refs" / "main"
    if ref.is_file():
        revision = ref.read_text(encoding="utf-8", errors="replace").strip()
        config = snapshots / revision / "config.json"
        if not config.is_file():
            raise InputError(f"{model_id}: refs/main names revision {revision!r} but {config} is not in the cache")
        return config
    revisions = sorted(p.name for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []
    if len(revisions) > 1:
        raise InputError(f"{model_id}: {folder} has {len(revisions)} snapshots ({', '.join(revisions)}) and no "
                         "refs/main to choose one; pass the path of the config.json you mean")
    config = snapshots / revisions[0] / "config.json" if revisions else None
    if config is None or not config.is_file():
        raise InputError(f"{model_id}: {folder} holds no snapshot with a config.json (opbsim does not download)")
    return config
