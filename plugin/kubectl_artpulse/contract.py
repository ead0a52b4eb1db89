"""What the plugin shares with the operator, as constants: the resource, the action annotation,
the labels of the track pods and the phases.

The plugin cannot import the operator (it ships alone, standard library only), so these are
copies; ``tests/unit/plugin/test_plugin_contract.py`` holds each one against its source
(``artpulse_operator.engine.rollout``, ``engine.desired``, ``engine.status`` and the CRD).
"""

from __future__ import annotations

GROUP = "artpulse.io"
VERSION = "v1alpha1"
PLURAL = "artpulsemodels"
SINGULAR = "artpulsemodel"
KIND = "ArtPulseModel"
CRD_NAME = f"{PLURAL}.{GROUP}"
# What kubectl is asked for: fully qualified, so no other resource's short name can shadow it.
RESOURCE = f"{PLURAL}.{VERSION}.{GROUP}"

# The operator acts on this annotation once, records it in status.lastAction and removes it.
ACTION_ANNOTATION = "artpulse.io/action"
ACTIONS = ("promote", "promote-full", "abort", "retry", "pause", "resume")

# Labels of the pods of a model's tracks (engine.desired.owner_labels plus the track).
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_TRACK = "artpulse.io/track"
LABEL_VERSION = "artpulse.io/model-version"
APP_NAME = "artpulse-inference"
MANAGED_BY = "artpulse-operator"

# The operator's own Deployment (manifests/base/operator.yaml), for ``version``.
OPERATOR_LABEL_SELECTOR = "app.kubernetes.io/name=artpulse-operator"

# The phases (engine.status.Phase), by what they mean to someone waiting for the rollout.
SUCCEEDED_PHASES = frozenset({"Stable"})
FAILED_PHASES = frozenset({"RolledBack", "Degraded", "Failed"})
IN_PROGRESS_PHASES = frozenset({"Pending", "Shadowing", "Progressing", "Paused", "Promoting"})


def pod_selector(name: str) -> str:
    """The label selector of every pod of the model ``name`` (all its tracks)."""
    return f"{LABEL_NAME}={APP_NAME},{LABEL_INSTANCE}={name},{LABEL_MANAGED_BY}={MANAGED_BY}"
