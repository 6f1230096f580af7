"""An outside OpenAPI fuzzer (Schemathesis) against sfmock's own contract, over a real
socket, with every check Schemathesis has, positive and negative data, on two configs:
open mode (any token is an account) and an accounts config (a wrong key is refused).

What a check cannot apply to, and why (per route):

- ``ignored_auth`` in open mode, on the ``/v1`` routes: open mode accepts every
  well-formed token by design (README, "Accounts"); the accounts config runs it.
- ``positive_data_acceptance``, only for an answer that is a 400 naming one of the
  contract's ``x-sfmock-*`` rules, or worded as its ``x-sfmock-message`` says the live
  service words it (an image data URL must decode, ``x-sfmock-max-pixels``,
  a scenario's rules grammar ``x-sfmock-schema``): rules the contract states as
  extensions because JSON Schema cannot. Any other rejection of valid data still fails.
- unknown query parameters are not generated as invalid data: the real listing and
  download routes ignore them (clients send ``page=``, ``page_size=``); the journal,
  which refuses them, has its own test (tests/test_journal.py).
- sfmock's own request headers are not generated: ``X-Sfmock-Fault`` asks for 5xx and
  dropped connections on purpose (tests/test_faults.py, tests/test_bad_input.py), and
  ``X-Sfmock-Strict`` switches to rules the lenient document does not describe.

Every case starts from a reset server, so a scenario one case installs, or a clock it
moves, cannot change the next case's answer.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import CHECKS, ignored_auth, load_all_checks, positive_data_acceptance

from sfmock import Settings, VirtualClock, check_response, load_contract
from sfmock.server import FakeServer

SFMOCK_HEADERS = {"#/components/parameters/FaultHeader", "#/components/parameters/StrictHeader"}
KEY = "sk-fuzz-0123456789"
CONFIGS = {
    "open": Settings(seed=1),
    "accounts": Settings(seed=1, accounts=[{"id": "fuzz", "balance": "1000000000", "keys": [KEY]}]),  # type: ignore[arg-type]
}


def fuzzable_contract() -> dict[str, Any]:
    document = copy.deepcopy(load_contract().document)
    for item in document["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [p for p in operation["parameters"] if p.get("$ref") not in SFMOCK_HEADERS]
    return document


load_all_checks()
ALL_CHECKS = list(CHECKS.get_all())
schema = schemathesis.openapi.from_dict(fuzzable_contract())
# credentials: the test sends the valid key, and ignored_auth re-sends each request without
# it and with a wrong one; extra query parameters are not "negative" data, as the real
# listing routes ignore them (clients send page= and page_size=)
schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)


@pytest.fixture(scope="module", params=list(CONFIGS))
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeServer]]:
    with FakeServer(CONFIGS[request.param], clock=VirtualClock()) as live:
        yield request.param, live


def _verbatim_messages(node: Any) -> list[re.Pattern[str]]:
    """The contract's ``x-sfmock-message`` wordings (the live service's own words for an
    extension rule, e.g. Qwen-Image's ``x-sfmock-max-pixels``), as patterns."""
    found: list[re.Pattern[str]] = []
    if isinstance(node, dict):
        template = node.get("x-sfmock-message")
        if isinstance(template, str) and any(key.startswith("x-sfmock-") for key in node if key != "x-sfmock-message"):
            found.append(re.compile(".*".join(re.escape(part) for part in re.split(r"\{[a-z_]+\}", template))))
        for value in node.values():
            found.extend(_verbatim_messages(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_verbatim_messages(value))
    return found


VERBATIM = _verbatim_messages(load_contract().document)


def names_an_extension_rule(case: Case, status: int, text: str) -> bool:
    """A 400 for a rule the contract states as an ``x-sfmock-*`` extension (in sfmock's
    words, or in the service's own where the contract gives them)."""
    if status != 400:
        return False
    if "(rule: x-sfmock-" in text:
        return True
    if any(pattern.search(text) for pattern in VERBATIM):
        return True
    if "<Code>AuthorizationQueryParametersError</Code>" in text:
        # a pre-signed URL's parameters depend on each other (the credential's date is
        # X-Amz-Date's day, the scope names the region): S3 refuses a mismatch with this 400,
        # and JSON Schema cannot state it (the contract's `x-sfmock-signed` says so)
        return True
    return case.path == "/_sfmock/scenario" and '"scenario: rules' in text


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzz_every_operation(case: Case, server: tuple[str, FakeServer]) -> None:
    config, live = server
    live.reset()
    live.use_scenario(None)
    headers = {"Authorization": f"Bearer {KEY}"} if case.path.startswith("/v1") else {}
    if case.operation.path == "/_sfmock/verify" and isinstance(case.body, dict):
        # a verification may wait up to 5 real seconds (the default too): not 60 times here;
        # a valid (or absent) timeout becomes 0, so valid bodies stay valid, invalid ones invalid
        wait = case.body.get("timeout")
        if wait is None or (isinstance(wait, int | float) and not isinstance(wait, bool) and 0 <= wait <= 5):
            case.body["timeout"] = 0
    response = case.call(base_url=live.url, headers=headers)
    excluded = []
    if config == "open" and case.path.startswith("/v1"):
        excluded.append(ignored_auth)  # open mode: every token is an account, by design
    if names_an_extension_rule(case, response.status_code, response.text):
        excluded.append(positive_data_acceptance)
    check_response(case.method, case.formatted_path, response.status_code, response.headers, response.content)
    case.validate_response(response, checks=ALL_CHECKS, excluded_checks=excluded, headers=headers)


def test_every_check_is_run() -> None:
    names = {check.__name__ for check in ALL_CHECKS}
    assert {"not_a_server_error", "ignored_auth", "positive_data_acceptance", "negative_data_rejection"} <= names
    assert len(names) >= 14


def test_the_fuzzer_is_not_toothless() -> None:
    from sfmock import ContractViolation

    with pytest.raises(ContractViolation):
        check_response(
            "POST",
            "/v1/images/generations",
            200,
            {"content-type": "application/json", "x-siliconcloud-trace-id": "t"},
            b'{"images": "nope"}',
        )


def test_clock_set_out_of_range_is_a_400() -> None:
    import httpx

    with FakeServer(CONFIGS["open"], clock=VirtualClock()) as live:
        answer = httpx.post(live.url + "/_sfmock/clock", json={"set": -7.29e89})
    assert answer.status_code == 400
