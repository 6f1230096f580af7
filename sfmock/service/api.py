"""The API's handlers: translate HTTP to the pure core and back, nothing more."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from sfmock.clock import Clock
from sfmock.contract.openapi import Contract, ModelSpec
from sfmock.contract.validation import RequestValidator, message_of
from sfmock.service.accounts import Account, Authenticator
from sfmock.service.admission import Admission
from sfmock.service.generation import Generator, prompt_tokens
from sfmock.service.headers import HEADERS_STATE, header_values
from sfmock.service.imagehost import SESSION_PARAM
from sfmock.service.lifecycle import Lifecycle
from sfmock.service.origins import Origins
from sfmock.service.payloads import read_json
from sfmock.service.quota import Usage
from sfmock.service.responses import (
    PARAMETER_INVALID,
    generation_bytes,
    generation_response,
    invalid_request,
    json_response,
    model_disabled,
    parameter_invalid,
    unauthorized,
    unknown_model,
)
from sfmock.service.rule_errors import RuleWording
from sfmock.state.rider import Rider, riding

__all__ = ["AHEAD_STATE", "STRICT_HEADER", "Api"]

AHEAD_STATE = "ahead"  # request.state.ahead: makes a 200's journal entry ahead (sfmock.state.rider)

STRICT_HEADER = "x-sfmock-strict"
_SWITCH = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


class Api:
    """The SiliconFlow endpoints sfmock fakes."""

    def __init__(
        self,
        *,
        contract: Contract,
        generator: Generator,
        authenticator: Authenticator,
        admission: Admission,
        clock: Clock,
        rng: random.Random,
        strict: bool,
        max_body_bytes: int,
        origins: Origins | None = None,
        lifecycle: Lifecycle | None = None,
        unknown_fields: str = "accept",
        invalid_parameter_code: int = 20012,
        wording: RuleWording | None = None,
    ) -> None:
        self.contract = contract
        self.generator = generator
        self.screens = type(generator).screen is not Generator.screen  # the fake's refuses none: not awaited
        self.validator = RequestValidator(contract)
        self.authenticator = authenticator
        self.admission = admission
        self.clock = clock
        self.rng = rng
        self.strict = strict
        self.max_body_bytes = max_body_bytes
        self.origins = origins or Origins(image_port=None, configured=True, from_host=False)
        self.lifecycle = lifecycle or Lifecycle((), started=clock.now())
        self.parameter_code = invalid_parameter_code
        self.wording = wording or RuleWording()
        self.known_fields = frozenset(contract.request_fields["properties"]) if unknown_fields == "reject" else None

    def account(self, request: Request) -> Account:
        """The caller's account; two Authorization headers are as bad as none."""
        single = request.scope.get("state", {}).get(HEADERS_STATE)
        if single is not None:  # the pipeline's map: no header came twice
            return self.authenticator.authenticate(single.get("authorization"))
        given = header_values(request.scope, "authorization")
        if len(given) > 1:
            raise unauthorized()
        return self.authenticator.authenticate(given[0] if given else None)

    async def text_to_image(self, request: Request) -> Response:
        """``POST /v1/{model}/text-to-image``, the 2024 route: a generation of the path's model."""
        return await self.generate(request, path_model=request.path_params["model"])

    async def generate(self, request: Request, *, path_model: str | None = None) -> Response:
        """``POST /v1/images/generations`` (and the old route, the model from its path).

        Checks, in order: key (401), account and key status (403), body is JSON (400/413),
        model exists (400), model is live and the account may use it (403 code 30003),
        request rules (400), rate limits (429), balance (403 or 402, code 30001). Only
        then is anything counted or charged.
        """
        account = self.account(request)
        strict = self.strict_mode(request)
        body = await read_json(request, self.max_body_bytes)
        if not isinstance(body, dict):
            raise invalid_request(f"Request body must be a JSON object, not {_json_type(body)}")
        if path_model is not None:
            body = {**body, "model": path_model}  # the path names the model, whatever the body says
        # the pipeline's notes on the request (request.state's dict, read without its wrapper)
        state: dict[str, Any] = request.scope.setdefault("state", {})
        session: Session | None = state.get("session")
        name = body.get("model")
        state["model"] = name if isinstance(name, str) else None  # for the metrics
        now = self.clock.now()
        if isinstance(name, str) and name:
            if name not in self.contract.models:
                raise unknown_model()
            lifecycle = self.lifecycle if session is None else session.lifecycle
            if lifecycle.is_retired(name, now) or not account.may_use(name):
                raise model_disabled()
        violation = self.validator.first_violation(body, strict=strict)
        message = None if violation is None else message_of(violation)
        if violation is not None and not self.wording.documented:
            observed = self.wording.error(violation)
            if observed is not None:
                raise observed
        if message is None and self.known_fields is not None and not body.keys() <= self.known_fields:
            extra = sorted(body.keys() - self.known_fields)[0]
            message = f"Invalid parameter: {extra}: not a field of the request (rule: unknown_fields)"
        if message is not None:
            if self.parameter_code == PARAMETER_INVALID and message.startswith("Invalid parameter: "):
                raise parameter_invalid()  # the seen wording names no field
            raise invalid_request(message)
        model = self.contract.models[body["model"]]
        if self.screens:
            await self.generator.screen(body, model)
        usage = _usage(self.generator.image_count(body, model), prompt_tokens(body))
        admission = session.admission if session is not None else self.admission
        fault = state.get("fault")
        dialect = fault.action.dialect if fault is not None else None
        ahead: Callable[[bytes], Rider | None] | None = state.get(AHEAD_STATE) if fault is None else None
        if ahead is None:
            headers = admission.admit(account, model, usage, now, state["trace_id"], dialect)
            return generation_response(self._result(request, session, body, model, now, fault), headers=headers)
        # A shared store writes the 200's journal entry in the admission's own call, so the
        # body is made first; a refusal leaves the random numbers as it found them.
        drawn = self.rng.getstate() if body.get("seed") is None else None  # a seed is drawn
        result = self._result(request, session, body, model, now, fault)
        content = generation_bytes(result)
        try:
            with riding(None if content is None else ahead(content)):  # sent with other requests' calls
                headers = await admission.admit_soon(account, model, usage, now, state["trace_id"], dialect)
        except BaseException:
            if drawn is not None:
                self.rng.setstate(drawn)
            state.pop("issued", None)
            raise
        return generation_response(result, headers=headers, content=content)

    def _result(
        self, request: Request, session: Session | None, body: dict[str, Any], model: ModelSpec, now: float, fault: Any
    ) -> dict[str, Any]:
        """The 200 body of an admitted generation; the URLs it issues noted for the journal."""
        expired = fault is not None and fault.action.expired_url
        # a Recorder's socket, the in-process host, or off loopback the request's Host
        base_url = self.origins.image_base(request)
        result = self.generator.respond(body, model, rng=self.rng, now=now, expired=expired, base_url=base_url)
        if session is not None and session.name is not None:
            # downloads carry no header of their own: the URL says which session issued it
            suffix = f"&{SESSION_PARAM}={quote(session.name, safe='')}"
            for image in (*result["images"], *result["data"]):
                image["url"] += suffix
        images = result.get("images") or []  # for the journal: the URLs as a client reads them
        state: dict[str, Any] = request.scope["state"]
        issued = state["issued"] = []
        for image in images:  # a loop: on Python 3.11 a comprehension is a frame more
            if isinstance(image, dict) and "url" in image:
                issued.append(str(image["url"]))
        return result

    def strict_mode(self, request: Request) -> bool:
        single = request.scope.get("state", {}).get(HEADERS_STATE)
        if single is not None:  # the pipeline's map: no header came twice
            value = single.get(STRICT_HEADER)
        else:
            values = header_values(request.scope, STRICT_HEADER)
            if len(values) > 1:
                raise invalid_request("X-Sfmock-Strict: given more than once")
            value = values[0] if values else None
        if value is None:
            return self.strict
        try:
            return _SWITCH[value.strip().lower()]
        except KeyError:
            expected = "1, true, yes or on (strict), or 0, false, no or off (lenient)"
            raise invalid_request(f"X-Sfmock-Strict: expected {expected}; got {value[:40]!r}") from None

    async def models(self, request: Request) -> Response:
        """``GET /v1/models?type=&sub_type=``."""
        self.account(request)
        kind = request.query_params.get("type")
        sub_type = request.query_params.get("sub_type")
        live = _lifecycle(request, self.lifecycle).live(self.contract.models, self.clock.now())
        data = [
            {"id": spec.id, "object": "model", "created": 0, "owned_by": ""}
            for spec in (self.contract.models[model] for model in live)
            # one real client asks type=text-to-image: a sub_type given as a type
            if kind in (None, "", "image", spec.sub_type) and sub_type in (None, "", spec.sub_type)
        ]
        return json_response({"object": "list", "data": data})

    async def user_info(self, request: Request) -> Response:
        """``GET /v1/user/info``: the account, with its balances as strings."""
        account = self.account(request)
        session = _session(request)
        balance, charged = (session.admission if session is not None else self.admission).balances(account)
        name, email = account.identity()
        data = {
            "id": account.id,
            "name": name,
            "image": "",
            "email": email,
            "isAdmin": False,
            "balance": f"{balance:.2f}",
            "status": account.status,
            "introduction": "",
            "role": "",
            "chargeBalance": f"{charged:.2f}",
            "totalBalance": f"{balance + charged:.2f}",
        }
        return json_response({"code": 20000, "message": "OK", "status": True, "data": data})


class Session(Protocol):
    """What the handler uses of the session serving a request (set by the chaos layer)."""

    @property
    def name(self) -> str | None: ...  # None: the default session

    @property
    def admission(self) -> Admission: ...

    @property
    def lifecycle(self) -> Lifecycle: ...


def _session(request: Request) -> Session | None:
    """The session serving the request (set by the pipeline), if any."""
    session: Session | None = request.scope.get("state", {}).get("session")
    return session


def _lifecycle(request: Request, default: Lifecycle) -> Lifecycle:
    """The models retired for the session serving the request (``default`` outside one)."""
    session = _session(request)
    return default if session is None else session.lifecycle


@functools.lru_cache(maxsize=1024)  # a frozen dataclass made for every generation: kept, as few differ
def _usage(images: int, tokens: int) -> Usage:
    return Usage(images=images, tokens=tokens)


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
