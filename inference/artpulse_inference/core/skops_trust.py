"""The types a served model may contain: one skops allowlist, fixed in this file.

A skops file names the type of every object in it, and skops builds only the types it is
told to trust. Its own default list covers scikit-learn's public estimators, their loss
and link helpers, numpy and scipy arrays and plain containers. On top of that we trust
exactly the internal types that the models of :mod:`artpulse_inference.training.models`
contain and skops does not trust by default: the trees of a random forest and of a
histogram gradient boosting model. We never use the list a model's own MLmodel file
carries (``skops_trusted_types``): whoever can write to the registry writes that list too,
and a list naming ``builtins.exec`` or an attacker's class would make loading run code.

Called by the training pipeline (a model with any other type fails training, before it is
logged) and by the server's model loader (a file with any other type is refused before
anything in it is built).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

# Types beyond skops' defaults that our training pipeline's models need, and nothing else.
TRUSTED_SKOPS_TYPES: Final[tuple[str, ...]] = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # models.py "hgb"
    "sklearn.tree._tree.Tree",  # models.py "forest"
)


# A skops file is a zip archive that skops unpacks in memory; ours are tens of MB.
MAX_UNPACKED_BYTES: Final = 1024 * 1024 * 1024


class OversizedModelError(ValueError):
    """The archive would unpack to more than :data:`MAX_UNPACKED_BYTES`."""


class UntrustedTypesError(ValueError):
    """The model contains types outside skops' defaults and :data:`TRUSTED_SKOPS_TYPES`."""

    def __init__(self, types: Iterable[str]) -> None:
        self.types: tuple[str, ...] = tuple(sorted(set(types)))
        super().__init__(
            f"types outside the trusted list: {self.named()} "
            f"(trusted beyond skops' defaults: {', '.join(TRUSTED_SKOPS_TYPES)})"
        )

    def named(self, limit: int = 10) -> str:
        """The first ``limit`` type names, each cut to 200 characters (they come from a file)."""
        shown = ", ".join(name[:200] for name in self.types[:limit])
        more = len(self.types) - limit
        return f"{shown} and {more} more" if more > 0 else shown


def beyond_allowlist(types: Iterable[str]) -> list[str]:
    """The names in ``types`` that are not on :data:`TRUSTED_SKOPS_TYPES`, sorted."""
    return sorted(set(types) - set(TRUSTED_SKOPS_TYPES))


def check_estimator_types(estimator: Any) -> list[str]:
    """The non-default types ``estimator`` needs (all of them ours), or :class:`UntrustedTypesError`.

    What training records as the model's ``skops_trusted_types``: a subset of our list.
    """
    import skops.io

    needed = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(estimator)))
    outside = beyond_allowlist(needed)
    if outside:
        raise UntrustedTypesError(outside)
    return needed


def load_trusted_skops(path: Path) -> Any:
    """Load a skops file trusting skops' defaults and our list only.

    The archive's unpacked size is checked from its directory, then the types are read
    from the file's schema, which builds no object; a file naming any other type raises
    :class:`UntrustedTypesError` before anything is constructed. A file that is not a
    readable skops archive raises what zipfile or skops raise (callers map it).
    """
    import skops.io

    with zipfile.ZipFile(path) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        raise OversizedModelError(
            f"the skops archive unpacks to {unpacked} bytes, more than {MAX_UNPACKED_BYTES}"
        )
    outside = beyond_allowlist(skops.io.get_untrusted_types(file=path))
    if outside:
        raise UntrustedTypesError(outside)
    return skops.io.load(path, trusted=list(TRUSTED_SKOPS_TYPES))
