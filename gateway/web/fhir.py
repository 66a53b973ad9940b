"""The Da Vinci PAS front door, mounted at ``/fhir`` by :func:`gateway.web.app.create_app`.

``POST /fhir/Claim/$submit`` takes a PAS request Bundle (bare or in a ``Parameters`` resource), checks
its FHIR structure (``fhir.resources``) and the PAS rules a 278 needs, translates it into a 278 request
(:mod:`mappings.pas.request`) and hands it to the HTTP API's path: the same checks as an inbox file,
the same recording (the bundle is the stored payload), the same partner route (real time within the
budget, else batch). The answer is a PAS response Bundle (:mod:`mappings.pas.response`): decided, or
pended/queued for ``$inquire`` to complete. A bundle that cannot become a valid 278 gets an
OperationOutcome naming each problem by path (400 structure, 422 content) and nothing is sent.

Authentication is the API's (Bearer key or mutual TLS): ``$submit`` needs ``authorizations:write``,
``$inquire`` ``authorizations:read``; ``/fhir/metadata`` is open, as FHIR servers' capability
statements are.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.lifecycle import RequestState
from gateway.stages.outbox import result_document
from gateway.store import hash_member_id
from gateway.web import api, apirecord
from gateway.web.api import ApiProblemError
from gateway.web.apiauth import ApiAuthError, ApiClient
from gateway.web.context import WebContext, web_context
from mappings.pas.bundle import BundleIndex
from mappings.pas.issues import Issue, IssueCode, operation_outcome
from mappings.pas.paths import evaluate
from mappings.pas.request import PasSubmission, to_request
from mappings.pas.response import TRACKING_SYSTEM, response_bundle
from mappings.pas.table import CONTEXTS, table

FHIR_JSON = "application/fhir+json"
PAS_OPERATIONS = "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/"


class FhirOutcomeError(Exception):
    """An answer that is an OperationOutcome (status and issues)."""

    def __init__(self, status: int, issues: list[Issue]) -> None:
        super().__init__(f"{status}: {len(issues)} issue(s)")
        self.status, self.issues = status, issues


def fhir_json(body: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


def unwrap(obj: Any) -> Any:
    """The Bundle itself, whether posted bare or as the ``resource`` parameter of a Parameters."""
    if isinstance(obj, dict) and obj.get("resourceType") == "Parameters":
        for parameter in obj.get("parameter") or ():
            if isinstance(parameter, dict) and isinstance(parameter.get("resource"), dict):
                return parameter["resource"]
    return obj


_FIELD_SECTIONS = {
    "subscriber": "person",
    "dependent": "person",
    "payer": "payer",
    "requester": "requester",
    "servicing_provider": "servicing",
    "lines": "line",
}


def _issue_for_field(field: str, reason: str) -> Issue:
    """A 278 request problem named by the PAS element the field was read from (the table's row)."""
    head, _, rest = field.partition(".")
    head = head.split("[", 1)[0]
    section = _FIELD_SECTIONS.get(head, "event")
    name = (rest or head).split(".")[-1].split("[", 1)[0] if section != "event" else head
    rule = table().get(section, {}).get(name)
    if rule is None:
        return Issue("Bundle.entry[0].resource", "value", f"{reason} (278 field {field})")
    return Issue(f"{CONTEXTS[rule.context].split(' ')[0]}.{rule.path}", "value", f"{reason} (X12 {rule.x12})")


def _translate(web: WebContext, bundle: Any) -> PasSubmission:
    from mappings.pas.structure import structure_issues  # noqa: PLC0415 - the FHIR models load slowly

    issues = (
        structure_issues(bundle)
        if isinstance(bundle, dict)
        else [Issue("Bundle", "structure", "not JSON object")]
    )
    if issues:
        raise FhirOutcomeError(400, issues)
    found = to_request(bundle, payer_ids=web.config.fhir.payers)
    if isinstance(found, list):
        raise FhirOutcomeError(422, found)
    return found


def _problem_issues(exc: ApiProblemError) -> list[Issue]:
    if exc.errors:
        return [_issue_for_field(f, r) for f, r in exc.errors]
    return [Issue("Bundle", "invalid" if exc.status < 500 else "structure", exc.title)]


def _failed(doc: dict[str, Any]) -> bool:
    """The gateway gave the request up: its 278 was rejected (999/TA1) or could not be built."""
    return doc.get("state") in {RequestState.REJECTED, RequestState.INVALID}


def outcome_for(exc: Exception) -> Response | None:
    """The front door's answers: OperationOutcomes, for the API's errors too."""
    if isinstance(exc, FhirOutcomeError):
        return fhir_json(operation_outcome(exc.issues), exc.status)
    if isinstance(exc, ApiProblemError):
        response = fhir_json(operation_outcome(_problem_issues(exc)), exc.status)
        response.headers.update(exc.headers)
        return response
    if isinstance(exc, ApiAuthError):
        code: IssueCode = "login" if exc.status == 401 else "forbidden"
        return fhir_json(operation_outcome([Issue("Bundle", code, exc.title)]), exc.status)
    return None


def fhir_endpoint(scope: str, template: str, handler: api.Handler) -> Any:
    """``handler`` behind the API's authentication and scope check, answering in FHIR."""
    return api.endpoint(scope, template, handler, render=outcome_for, area="fhir")


async def submit(request: Request, web: WebContext, client: ApiClient) -> Response:
    key = api.idempotency_key(request)
    body, obj = await api.json_body(request, web.config.api.max_body_bytes)
    bundle = unwrap(obj)
    pas = await run_in_threadpool(_translate, web, bundle)
    req, partner = api.checked_request(pas.request, "278", web)
    ctx = await run_in_threadpool(api.api_context, web)
    budget = web.config.api.realtime_budget_seconds
    try:
        sub = await run_in_threadpool(
            apirecord.submit, ctx, client, body, req, partner, idempotency_key=key, budget=budget
        )
    except apirecord.IdempotencyMismatchError as exc:
        raise ApiProblemError(422, str(exc)) from None
    if sub.replay is not None:
        return fhir_json(sub.replay[1], sub.replay[0])
    if sub.in_progress or sub.request_id is None:
        raise ApiProblemError(
            409, "a call with this Idempotency-Key is still in progress", headers={"Retry-After": "1"}
        )
    status, doc = await run_in_threadpool(api.call_outcome, ctx, web, sub, budget)
    if status != 200:  # not answered in time: the request's current (queued) result
        current = await run_in_threadpool(api.own_result, web, client, sub.tracking_number)
        doc = current if current is not None else doc
    answer = response_bundle(doc, pas, bundle, created=web.clock(), failed=_failed(doc))
    await run_in_threadpool(apirecord.remember_response, web.store, sub.tracking_number, 200, answer)
    return fhir_json(answer)


def _inquiry_keys(bundle: Any) -> tuple[str | None, str | None]:
    """(tracking number, the EHR's claim identifier) from an inquiry bundle's Claim."""
    located = BundleIndex.of(bundle).first_of_type("Claim") if isinstance(bundle, dict) else None
    if located is None:
        raise FhirOutcomeError(422, [Issue("Bundle.entry", "required", "an inquiry bundle holds one Claim")])
    identifiers = [i for i in located.resource.get("identifier") or () if isinstance(i, dict)]
    tracking = next((i.get("value") for i in identifiers if i.get("system") == TRACKING_SYSTEM), None)
    reference = next((i.get("value") for i in identifiers if i.get("system") != TRACKING_SYSTEM), None)
    if not tracking and not reference:
        raise FhirOutcomeError(
            422, [Issue(f"{located.path}.identifier", "required", "the Claim's identifier names the request")]
        )
    return tracking, reference


def _item_codes(bundle: Any) -> frozenset[str]:
    """The codes of the Claim's items (productOrService), which tell requests with one reference apart."""
    located = BundleIndex.of(bundle).first_of_type("Claim") if isinstance(bundle, dict) else None
    if located is None:
        return frozenset()
    return frozenset(str(c) for c in evaluate(located.resource, "item.productOrService.coding.code"))


def _candidates(web: WebContext, client: ApiClient, tracking: str | None, reference: str | None) -> list[Any]:
    ctx = api.api_context(web)
    with web.store.read() as tx:
        if tracking:
            rows = [r for r in [tx.requests.get_by_tracking(tracking)] if r is not None]
        else:
            rows = tx.requests.by_reference_hash(hash_member_id(reference or "", ctx.member_key))
    return sorted(
        (r for r in rows if r.kind == "278" and apirecord.owns(web.store, client, r.tracking_number)),
        key=lambda r: r.id,
        reverse=True,
    )


def _find(
    web: WebContext, client: ApiClient, keys: tuple[str | None, str | None], wanted: frozenset[str]
) -> dict[str, Any]:
    """The newest request of this client with that tracking number or claim identifier whose stored
    bundle has every item code the inquiry names: its result and its bundle; else a not-found outcome."""
    ctx = api.api_context(web)
    for row in _candidates(web, client, *keys):
        with web.store.read() as tx:
            source = tx.files.get(row.source_file_id) if row.source_file_id is not None else None
            doc = result_document(tx, row)
        if source is None:
            continue
        bundle = unwrap(json.loads(ctx.payloads.get(source.sha256)))
        if wanted <= _item_codes(bundle):
            return {"doc": doc, "bundle": bundle}
    raise FhirOutcomeError(
        404,
        [
            Issue(
                "Bundle.entry[0].resource.identifier",
                "not-found",
                "no prior authorization of this client matches",
            )
        ],
    )


async def inquire(request: Request, web: WebContext, client: ApiClient) -> Response:
    _body, obj = await api.json_body(request, web.config.api.max_body_bytes)
    inquiry = unwrap(obj)
    keys = _inquiry_keys(inquiry)
    found = await run_in_threadpool(_find, web, client, keys, _item_codes(inquiry))
    pas = to_request(found["bundle"], payer_ids=web.config.fhir.payers)
    if isinstance(pas, list):  # the stored bundle was accepted once; a changed payer directory may refuse it
        raise FhirOutcomeError(409, pas)
    doc = found["doc"]
    return fhir_json(response_bundle(doc, pas, found["bundle"], created=web.clock(), failed=_failed(doc)))


def capability_statement(web: WebContext) -> dict[str, Any]:
    """What the front door offers (FHIR R4, JSON, the two PAS operations on Claim)."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": web.clock().date().isoformat(),
        "kind": "instance",
        "software": {"name": "x12-gateway"},
        "implementation": {"description": "x12-gateway Da Vinci PAS front door (PAS -> X12 278)"},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "instantiates": ["http://hl7.org/fhir/us/davinci-pas/CapabilityStatement/EHR"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Authorization: Bearer <API key> (x12gw api-keys), or a mutual-TLS "
                    "client certificate; $submit needs authorizations:write, $inquire "
                    "authorizations:read"
                },
                "resource": [
                    {
                        "type": "Claim",
                        "supportedProfile": [
                            "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim"
                        ],
                        "operation": [
                            {"name": "submit", "definition": PAS_OPERATIONS + "Claim-submit"},
                            {"name": "inquire", "definition": PAS_OPERATIONS + "Claim-inquiry"},
                        ],
                    }
                ],
            }
        ],
    }


async def metadata(request: Request) -> Response:
    return fhir_json(capability_statement(web_context(request)))


def routes() -> list[Route]:
    """The front door's routes, relative to ``/fhir``."""
    return [
        Route("/metadata", metadata, methods=["GET"]),
        Route(
            "/Claim/$submit",
            fhir_endpoint("authorizations:write", "POST /fhir/Claim/$submit", submit),
            methods=["POST"],
        ),
        Route(
            "/Claim/$inquire",
            fhir_endpoint("authorizations:read", "POST /fhir/Claim/$inquire", inquire),
            methods=["POST"],
        ),
    ]
