"""An outside OpenAPI fuzzer (Schemathesis) against sfmock's own contract.

Every operation but the control API's gets generated requests, valid and invalid;
every answer must conform to the contract (status, headers, content type, body) and
none may be a 5xx. sfmock's own headers are left out: X-Sfmock-Fault asks for 5xx on
purpose, and X-Sfmock-Strict switches to stricter rules the OpenAPI document (which
describes the real, lenient service) cannot express.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from conftest import contract_hook
from sfmock import Account, Settings, VirtualClock, check_response, create_app, load_contract

SFMOCK_HEADERS = {"#/components/parameters/FaultHeader", "#/components/parameters/StrictHeader"}


def fuzzable_contract() -> dict[str, Any]:
    document = copy.deepcopy(load_contract().document)
    document["paths"] = {path: item for path, item in document["paths"].items() if not path.startswith("/_sfmock")}
    for item in document["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [p for p in operation["parameters"] if p.get("$ref") not in SFMOCK_HEADERS]
    return document


KEY = "sk-fuzz-0123456789"
# a key registry, so that the fuzzer's made-up credentials are refused as the real API refuses them
ACCOUNT = Account(id="fuzz", balance=Decimal(10**9), keys=((KEY, True),))
APP = create_app(Settings(seed=1, accounts=(ACCOUNT,)), clock=VirtualClock())
schema = schemathesis.openapi.from_dict(fuzzable_contract())
schema.app = APP


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzz_every_operation(case: Case) -> None:
    headers = {"Authorization": f"Bearer {KEY}"} if case.path.startswith("/v1") else None
    response = case.call(headers=headers)
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:200]}"
    check_response(case.method, case.formatted_path, response.status_code, response.headers, response.content)
    # sfmock's contract has rules JSON Schema cannot state (an image data URL must decode,
    # x-sfmock-max-pixels), so "schema-valid data must be accepted" would be a false alarm;
    # and the listing endpoints take any query string, as the real ones do (clients send
    # page= and page_size=), so only the generation route must reject what breaks its schema
    excluded = [positive_data_acceptance]
    if case.method == "GET":
        excluded.append(negative_data_rejection)
    case.validate_response(response, excluded_checks=excluded)


def test_the_fuzzer_is_not_toothless() -> None:
    # the same checks fail on a body the contract does not allow
    import pytest

    from sfmock import ContractViolation

    with pytest.raises(ContractViolation):
        check_response(
            "POST",
            "/v1/images/generations",
            200,
            {"content-type": "application/json", "x-siliconcloud-trace-id": "t"},
            b'{"images": "nope"}',
        )
    assert contract_hook  # the in-suite contract hook is the same check
