"""``x12gw demo --fhir``: EHR bundles -> 278 -> clearinghouse -> 278 response -> ClaimResponse.

Every Da Vinci PAS example of ``sample_edi/fhir`` (the implementation guide's own and this project's)
is POSTed to ``/fhir/Claim/$submit`` of ``x12gw serve``'s app; the gateway turns each into a 278 and
sends it in real time (CAQH CORE, SOAP 1.2, mutual TLS) to the simulator, which answers from the demo
scenario. The ClaimResponse's decision per item is printed; a pended answer is completed by the run
loop and shown again through ``$inquire``.
"""

from __future__ import annotations

import http.client
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from gateway.runtime.config import load_config
from gateway.runtime.runner import Gateway, open_context
from gateway.web import apiauth
from mappings.pas.paths import PAS_SD
from payersim.demo import SAMPLES
from payersim.demo_realtime import api_server, core_workspace, settle

PAYER = "ACME01UM"  # the SOAP partner's payer id in ``demo_realtime.config_text``
INSURER_NPI = "http://hl7.org/fhir/sid/us-npi|1234567893"  # the examples' insurer


def call(port: int, key: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/fhir+json"}
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def decisions(bundle: dict[str, Any]) -> str:
    """``item:code/number`` per ClaimResponse item (what a clinician's EHR would show)."""
    response = bundle["entry"][0]["resource"]
    shown = []
    for item in response.get("item", []):
        action: dict[str, Any] = next(
            (e for e in item["extension"] if e["url"] == PAS_SD + "extension-reviewAction"), {}
        )
        parts = {p["url"]: p for p in action.get("extension", [])}
        coding = parts.get(PAS_SD + "extension-reviewActionCode", {}).get("valueCodeableConcept", {})
        code = (coding.get("coding") or [{}])[0].get("code", "?")
        number = parts.get("number", {}).get("valueString")
        shown.append(f"{item['itemSequence']}:{code}" + (f"/{number}" if number else ""))
    return f"{response['outcome']:<9} " + " ".join(shown)


def run_fhir_demo(*, keep: Path | None = None, timeout: float = 60.0, out: TextIO = sys.stdout) -> int:
    base = keep or Path(tempfile.mkdtemp(prefix="x12gw-demo-fhir-"))
    config_path, servers = core_workspace(base, f'\n[fhir.payers]\n"{INSURER_NPI}" = "{PAYER}"\n')
    ctx = open_context(load_config(config_path), allow_upgrade=True)
    try:
        _, key = apiauth.add_client(ctx.store, f"ehr-{int(time.time())}", apiauth.SCOPES)
        assert key is not None  # noqa: S101 - a key client always gets a key
        out.write(
            f"workspace: {base}\nPAS bundles -> /fhir/Claim/$submit -> 278 over CORE SOAP (payer {PAYER})\n"
        )
        bundles = {
            p.stem: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((SAMPLES / "fhir").glob("*.json"))
        }
        with api_server(ctx.config) as port:
            ok = _submit_all(port, key, bundles, out)
            settled = settle(Gateway(ctx), timeout)
            out.write("\nafter the run loop, $inquire:\n")
            for name, bundle in bundles.items():
                status, answer = call(port, key, "/fhir/Claim/$inquire", bundle)
                out.write(f"  {name:<26} {status} {decisions(answer) if status == 200 else answer}\n")
                ok = ok and status == 200
        return 0 if ok and settled else 1
    finally:
        ctx.store.close()
        for server in servers.values():
            server.stop()
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def _submit_all(port: int, key: str, bundles: dict[str, dict[str, Any]], out: TextIO) -> bool:
    ok = True
    for name, bundle in bundles.items():
        started = time.perf_counter()
        status, answer = call(port, key, "/fhir/Claim/$submit", bundle)
        ms = (time.perf_counter() - started) * 1000
        shown = decisions(answer) if status == 200 else json.dumps(answer)[:200]
        out.write(f"  $submit {name:<26} {status} {shown} ({ms:.0f} ms)\n")
        ok = ok and status == 200
    return ok
