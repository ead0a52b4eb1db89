"""The model registry behind a small interface: resolve aliases, move aliases, tag versions.

Who calls it: the reconcile handler, before and after ``engine.rollout.plan`` (see the
docstring there for the order). :class:`MlflowRegistry` is the MLflow adapter;
``RegistryError`` is the one exception callers handle (unreachable server, bad answer).

Two adapters with one interface: :class:`MlflowRestRegistry` speaks MLflow's REST API with
httpx (no ``mlflow`` import: about 150 MB less RSS in the operator, the recommended one);
:class:`MlflowRegistry` uses ``MlflowClient`` (imported only when asked for, for setups that
need the MLflow client's own auth plugins).
"""

from typing import TYPE_CHECKING, Any

from artpulse_operator.registry.base import ModelRegistry, RegistryError
from artpulse_operator.registry.mlflow_rest import MlflowRestRegistry

if TYPE_CHECKING:
    from artpulse_operator.registry.mlflow import MlflowRegistry, registry_for

__all__ = ["MlflowRegistry", "MlflowRestRegistry", "ModelRegistry", "RegistryError", "registry_for"]


def __getattr__(name: str) -> Any:
    # ``import mlflow`` costs ~150 MB: only when the MlflowClient adapter is really used.
    if name in ("MlflowRegistry", "registry_for"):
        from artpulse_operator.registry import mlflow as _mlflow_adapter

        return getattr(_mlflow_adapter, name)
    raise AttributeError(name)
