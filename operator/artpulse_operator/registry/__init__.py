"""The model registry behind a small interface: resolve aliases, move aliases, tag versions.

Who calls it: the reconcile handler, before and after ``engine.rollout.plan`` (see the
docstring there for the order). :class:`MlflowRegistry` is the MLflow adapter;
``RegistryError`` is the one exception callers handle (unreachable server, bad answer).
"""

from artpulse_operator.registry.base import ModelRegistry, RegistryError
from artpulse_operator.registry.mlflow import MlflowRegistry, registry_for

__all__ = ["MlflowRegistry", "ModelRegistry", "RegistryError", "registry_for"]
