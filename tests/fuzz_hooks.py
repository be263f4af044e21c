"""Schemathesis hooks for tests/test_api_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

`positive_data_acceptance` expects a request the schema allows to be accepted. A few rules are
beyond what a JSON schema can state: the state of things (a cursor, token or parent id that
names nothing this API issued or stores, a password the strength estimator finds guessable, a
reused idempotency key) and relations between values (a product named on two lines of one
order, a total above the maximum). Their answers carry problem types of their own and are kept
out of that one check; every other refusal of schema-valid data, above all a `validation-error`,
still fails the run, as does every other check.
"""

from __future__ import annotations

from typing import Any

import schemathesis

_BEYOND_A_SCHEMA = frozenset(
    {
        "invalid-cursor",
        "invalid-verification-token",
        "invalid-reset-token",
        "invalid-refresh-token",
        "email-already-verified",
        "illegal-transition",
        "unknown-category",
        "unknown-parent-category",
        "category-too-deep",
        "unknown-products",
        "duplicate-order-lines",
        "mixed-currencies",
        "order-total-too-large",
        "idempotency-key-reused",
        "weak-password",
    }
)


def _beyond_a_schema(problem: dict[str, Any]) -> bool:
    code = str(problem.get("type", "")).rsplit("/", 1)[-1]
    return code in _BEYOND_A_SCHEMA or code.startswith("password-")


def _undeclared_fields_only(problem: dict[str, Any]) -> bool:
    # Every body schema says additionalProperties: false, so a request refused only for fields
    # the schema does not declare was not schema-valid: the stateful phase's inferred links
    # sometimes nest a value under a made-up "body" field and still call the request positive.
    errors = problem.get("errors") or []
    return bool(errors) and all(error.get("type") == "extra_forbidden" for error in errors)


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keeps a failure unless it is a positive-data refusal of one of the kinds above."""
    if type(failure).__name__ != "RejectedPositiveData":
        return True
    try:
        problem = response.json()
    except ValueError:
        return True
    if not isinstance(problem, dict):
        return True
    return not (_beyond_a_schema(problem) or _undeclared_fields_only(problem))
