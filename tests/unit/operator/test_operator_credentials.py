"""Table tests of engine.credentials: the allowlist, Secret parsing, the choice, the condition.

Cases in tests/data/operator/credential_cases.yaml. The attack itself (a tenant's server
receiving the operator's credentials) is sent for real in
tests/security/test_security_operator_credentials.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_operator.engine.credentials import (
    CredentialProblem,
    CredentialSource,
    EndpointCredentials,
    HttpAuth,
    auth_from_secret,
    choose_auth,
    credentials_condition,
    uri_allowed,
    with_credentials_condition,
)
from artpulse_operator.engine.status import ConditionType, RolloutStatus

CASES = yaml.safe_load(
    (Path(__file__).parents[2] / "data" / "operator" / "credential_cases.yaml").read_text()
)
FIELD = "spec.model.credentialsSecretRef"
NOW = datetime(2025, 1, 1, tzinfo=UTC)
OPERATOR = HttpAuth(token="operator-token", org_id="ops-tenant")
ALLOWLIST = ["http://mlflow.artpulse-system.svc:5000"]


@pytest.mark.parametrize("case", CASES["allowlist"], ids=lambda c: c["uri"])
def test_uri_allowed(case: dict[str, Any]) -> None:
    assert uri_allowed(case["uri"], case["allowlist"]) is case["allowed"]


@pytest.mark.parametrize("case", CASES["secrets"], ids=lambda c: c["name"])
def test_auth_from_secret(case: dict[str, Any]) -> None:
    result = auth_from_secret(
        case["data"], "ml/creds", FIELD, allow_tls_only=case.get("tls", False)
    )
    if "problem" in case:
        assert isinstance(result, CredentialProblem)
        assert (result.reason, result.key) == (case["problem"]["reason"], case["problem"]["key"])
        assert result.secret == "ml/creds"
        assert result.message.startswith(f"{FIELD}: Secret ml/creds")
    else:
        assert result == HttpAuth(**case["auth"])


def test_secret_values_never_show_in_repr() -> None:
    auth = HttpAuth(token="t0k3n", username="ops", password="pw", key_pem="KEY")
    assert "t0k3n" not in repr(auth)
    assert "pw" not in repr(auth)
    assert "KEY" not in repr(auth)
    assert "ops" in repr(auth)


@pytest.mark.parametrize(
    ("uri", "own", "operator", "source", "auth"),
    [
        # the operator's own MLflow: its credentials
        (ALLOWLIST[0], None, OPERATOR, CredentialSource.OPERATOR, OPERATOR),
        # a tenant's URL: nothing, and the choice says it was withheld
        ("https://evil.example", None, OPERATOR, CredentialSource.WITHHELD, HttpAuth()),
        # the resource's Secret wins everywhere, also on the operator's own URL
        (ALLOWLIST[0], HttpAuth(token="tenant"), OPERATOR, CredentialSource.SECRET,
         HttpAuth(token="tenant")),
        ("https://evil.example", HttpAuth(token="tenant"), OPERATOR, CredentialSource.SECRET,
         HttpAuth(token="tenant")),
        # an operator without credentials withholds nothing
        ("https://evil.example", None, None, CredentialSource.ANONYMOUS, HttpAuth()),
        # TLS trust alone is no credential
        ("https://evil.example", None, HttpAuth(ca_pem="CA"), CredentialSource.ANONYMOUS,
         HttpAuth()),
    ],
)  # fmt: skip
def test_choose_auth(
    uri: str,
    own: HttpAuth | None,
    operator: HttpAuth | None,
    source: CredentialSource,
    auth: HttpAuth,
) -> None:
    choice = choose_auth(uri, own=own, operator=operator, allowlist=ALLOWLIST)
    assert (choice.source, choice.auth) == (source, auth)


def test_the_resource_picks_its_tenant_header_only_without_the_operators_credentials() -> None:
    options = HttpAuth(org_id="team-a", insecure_skip_verify=True)
    with_operator = choose_auth(ALLOWLIST[0], own=None, operator=OPERATOR, allowlist=ALLOWLIST,
                                options=options)  # fmt: skip
    assert with_operator.auth.org_id == "ops-tenant"
    assert with_operator.auth.insecure_skip_verify is False
    own = choose_auth(ALLOWLIST[0], own=HttpAuth(token="t"), operator=OPERATOR,
                      allowlist=ALLOWLIST, options=options)  # fmt: skip
    assert (own.auth.org_id, own.auth.insecure_skip_verify) == ("team-a", True)
    anonymous = choose_auth("https://other", own=None, operator=OPERATOR, allowlist=ALLOWLIST,
                            options=options)  # fmt: skip
    assert anonymous.auth == HttpAuth(org_id="team-a", insecure_skip_verify=True)
    assert anonymous.auth.headers() == {"X-Scope-OrgID": "team-a"}


def _endpoint(source: CredentialSource | None, problem: CredentialProblem | None = None) -> Any:
    return EndpointCredentials(
        "MLflow", "https://evil.example", source, problem, FIELD, "ARTPULSE_MLFLOW_CREDENTIAL_URIS"
    )


def test_condition_names_the_withheld_url_and_the_setting() -> None:
    ok, reason, message = credentials_condition([_endpoint(CredentialSource.WITHHELD)])
    assert (ok, reason) == (False, "OperatorCredentialsWithheld")
    assert "https://evil.example" in message
    assert "ARTPULSE_MLFLOW_CREDENTIAL_URIS" in message
    assert FIELD in message


def test_condition_names_the_secret_and_key() -> None:
    problem = auth_from_secret({"username": "u"}, "ml/creds", FIELD)
    assert isinstance(problem, CredentialProblem)
    ok, reason, message = credentials_condition([_endpoint(None, problem)])
    assert (ok, reason) == (False, "SecretKeyMissing")
    assert "ml/creds" in message
    assert "'password'" in message


def test_condition_events_on_change_only() -> None:
    status = RolloutStatus()
    withheld = [_endpoint(CredentialSource.WITHHELD)]
    status, events = with_credentials_condition(status, withheld, NOW, 1)
    assert [(e.type, e.reason) for e in events] == [("Warning", "OperatorCredentialsWithheld")]
    cond = status.condition(ConditionType.CREDENTIALS_RESOLVED)
    assert cond is not None
    assert cond.status == "False"
    status, events = with_credentials_condition(status, withheld, NOW, 1)
    assert events == []  # the same problem again: no new Event
    status, events = with_credentials_condition(
        status, [_endpoint(CredentialSource.SECRET)], NOW, 2
    )
    assert [(e.type, e.reason) for e in events] == [("Normal", "CredentialsResolved")]
    cond = status.condition(ConditionType.CREDENTIALS_RESOLVED)
    assert cond is not None
    assert cond.status == "True"
    unchanged, events = with_credentials_condition(status, [], NOW, 2)
    assert (unchanged, events) == (status, [])
