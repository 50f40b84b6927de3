"""Generate docs/api.md from the app itself: ``python -m docs.generate_api > docs/api.md``.

Endpoints, parameters and statuses come from the OpenAPI document; the problem
reasons from :data:`node.api.problems.REASONS`; limits from
:mod:`node.api.constants`; every example is a real exchange with an in-process
:class:`~tests.devnode.DevNode` whose keys, clock and nonces are fixed, so the
output is the same on every run (a test checks that docs/api.md is current).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from ledger.genesis import DEFAULT_POLICY, Genesis
from ledger.keys import SigningKey
from ledger.statekeys import note_key
from ledger.tx import Transaction
from ledger.validators import Validator, ValidatorSet
from node.api import constants as api_constants
from node.api.app import create_app
from node.api.metrics import STATUS_METRICS, TIMING_HELP, consensus_timing_metric
from node.api.problems import REASONS
from tests.devnode import DevNode

_BASE = "http://localhost:8080"
_TIME_MS = 1_780_000_000_000
_JSON_CHARS_MAX = 6_000  # longer example bodies are cut (marked) to keep the page readable


def _key(label: str) -> SigningKey:
    return SigningKey("EdDSA", hashlib.sha256(f"imi-docs/{label}".encode()).digest())


def docs_node() -> DevNode:
    """A 4-validator dev node with fixed keys and a clock that ticks one second per block."""
    keys = [_key(f"validator{i}") for i in range(4)]
    validators = ValidatorSet.of(
        Validator(f"agency-{i}", k.public_key, 1, f"10.0.0.{i + 1}:7000",
                  hashlib.sha256(f"tls{i}".encode()).digest())
        for i, k in enumerate(keys)
    )
    genesis = Genesis("imi-docs", _TIME_MS, validators, (_key("trustee").public_key,), 1, dict(DEFAULT_POLICY))
    ticks = iter(range(1, 1_000_000))
    return DevNode(genesis, keys, clock_ms=lambda: _TIME_MS + 1000 * next(ticks), name="agency-0")


def _note(label: str, nonce: int) -> Transaction:
    key = _key(label)
    return Transaction.create(chain_id="imi-docs", type="test.note", sender=key.key_id,
                              payload={"data": f"note {nonce}".encode()}, expires_at_ms=_TIME_MS + 3_600_000,
                              nonce=nonce.to_bytes(16, "big")).sign(key)


@dataclass
class Exchange:
    method: str
    path: str
    body: Any
    status: int
    content_type: str
    response: str


async def _examples() -> dict[str, list[Exchange]]:
    node = docs_node()
    app = create_app(node)
    out: dict[str, list[Exchange]] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=_BASE) as client:

        async def call(route: str, method: str, path: str, body: Any = None, raw: bytes | None = None,
                       headers: dict[str, str] | None = None) -> httpx.Response:
            response = await client.request(method, path, json=body if raw is None else None, content=raw,
                                            headers=headers)
            text = response.text
            if response.headers["content-type"].endswith("json"):
                text = json.dumps(response.json(), indent=2)
            out.setdefault(route, []).append(Exchange(
                method, path, body if raw is None else raw.decode(errors="replace")[:80],
                response.status_code, response.headers["content-type"], text))
            return response

        first, second = _note("citizen-a", 1), _note("citizen-b", 2)
        post = "POST /v1/transactions"
        await call(post, "POST", "/v1/transactions?wait=commit", {"tx": first.to_b64()})
        await call(post, "POST", "/v1/transactions", {"tx": second.to_b64()})
        node.commit()
        await call(post, "POST", "/v1/transactions", {"tx": first.to_b64()})
        tampered = bytearray(_note("citizen-c", 3).to_bytes())
        tampered[-1] ^= 1
        await call(post, "POST", "/v1/transactions", {"tx": Transaction.from_bytes(bytes(tampered)).to_b64()})
        await call(post, "POST", "/v1/transactions", raw=b'{"tx": ', headers={"content-type": "application/json"})
        await call("GET /v1/transactions/{tx_id}", "GET", f"/v1/transactions/{second.tx_id.hex()}")
        await call("GET /v1/transactions/{tx_id}", "GET", "/v1/transactions/" + "00" * 32)
        await call("GET /v1/blocks/latest", "GET", "/v1/blocks/latest")
        await call("GET /v1/blocks/{height}", "GET", "/v1/blocks/1")
        await call("GET /v1/blocks/{height}", "GET", "/v1/blocks/9")
        note_path = quote(note_key(_key("citizen-a").key_id).decode(), safe="")
        await call("GET /v1/state/{key}", "GET", f"/v1/state/{note_path}?height=2")
        await call("GET /v1/state/{key}", "GET", "/v1/state/did%2Fdid%3Aimi%3Anobody")
        await call("GET /v1/proofs/consistency", "GET", "/v1/proofs/consistency?from=1&to=2")
        await call("GET /v1/validators", "GET", "/v1/validators?height=2")
        await call("GET /health", "GET", "/health")
        metrics = await client.get("/metrics")
        lines = [ln for ln in metrics.text.splitlines()
                 if ln.startswith(("imi_height", "imi_api_tx_")) and "_created" not in ln]
        out["GET /metrics"] = [Exchange("GET", "/metrics", None, 200, metrics.headers["content-type"],
                                        "\n".join(lines[:12]) + "\n…")]
    return out


def _cut(text: str) -> str:
    return text if len(text) <= _JSON_CHARS_MAX else text[:_JSON_CHARS_MAX] + "\n… (cut)"


def _params_table(operation: dict[str, Any]) -> list[str]:
    params = operation.get("parameters", [])
    if not params:
        return []
    rows = ["| parameter | in | type | required | notes |", "|---|---|---|---|---|"]
    for p in params:
        schema = p.get("schema", {})
        kind = schema.get("type") or "/".join(s.get("type", "?") for s in schema.get("anyOf", []))
        notes = [p.get("description", "").rstrip(".")]
        for bound in ("minimum", "maximum", "default", "pattern", "enum"):
            if bound in schema:
                notes.append(f"{bound} `{schema[bound]}`")
        rows.append(f"| `{p['name']}` | {p['in']} | {kind} | {'yes' if p.get('required') else 'no'} | "
                    f"{'; '.join(n for n in notes if n)} |")
    return rows + [""]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def render(spec: dict[str, Any], examples: dict[str, list[Exchange]]) -> str:
    lines = [
        "# imi validator REST API (v1)",
        "",
        "<!-- generated by `python -m docs.generate_api > docs/api.md`; do not edit by hand -->",
        "",
        "Every validator serves this API (`imi node start`, address `api` in node.json). The live",
        "OpenAPI document is at `/openapi.json`, an explorer at `/docs`.",
        "",
        "Conventions:",
        "",
        "- Paths are versioned (`/v1/...`); `/health` and `/metrics` are not.",
        "- Hashes and ids are lowercase hex; signatures and opaque bytes (transactions, state",
        "  values) are base64url without padding. A transaction travels as base64url of its",
        "  canonical CBOR (`Transaction.to_b64`).",
        "- Every answer about committed data carries the block `header` it is anchored to and that",
        "  header's commit `certificate`, so a client holding only the genesis can check it without",
        "  trusting the node: verify the certificate against the validator set",
        "  (`CommitCertificate.verify`), then the proof against the header (`log_root` for",
        "  inclusion and consistency proofs, RFC 9162; `state_root` for state proofs,",
        "  `ledger.state.verify_state_proof`).",
        "- Request bodies are JSON (`Content-Type: application/json`, UTF-8), strict: unknown",
        "  fields, duplicate keys, NaN and bodies over the limit are refused.",
        "",
        "## Errors",
        "",
        "Every error is an RFC 9457 problem document, `Content-Type: application/problem+json`:",
        "",
        "```json",
        json.dumps({"type": api_constants.API_PROBLEM_TYPE_BASE + "bad-signature",
                    "title": REASONS["bad-signature"].title, "status": 422,
                    "detail": "invalid signature by 3q2-…", "reason": "bad-signature"}, indent=2),
        "```",
        "",
        f"- `type` is `{api_constants.API_PROBLEM_TYPE_BASE}<reason>`: a URI naming the kind of",
        "  problem (an identifier; it need not resolve).",
        "- `reason` (extension member) is the stable machine-readable code to switch on; ledger",
        "  rejections keep the ledger's own reason (`ledger.errors`, `ledger.execution`).",
        "- `title` is fixed per reason; `detail` is for humans and may change.",
        "- `504 commit-timeout` also carries `id`: the transaction may still commit; poll",
        "  `GET /v1/transactions/{id}`. `503` answers carry `Retry-After`.",
        "- No answer is ever a bare 500 with a traceback: an unexpected failure is logged and",
        "  answered `500 internal-error`.",
        "",
        "## Limits",
        "",
        "| limit | value |",
        "|---|---|",
        f"| request body | {api_constants.API_BODY_BYTES_MAX} bytes (413 `body-too-large`, enforced while reading) |",
        f"| request JSON nesting | {api_constants.API_JSON_DEPTH_MAX} |",
        (f"| `?wait=commit` timeout | default {api_constants.API_COMMIT_WAIT_MS_DEFAULT} ms, max "
         f"{api_constants.API_COMMIT_WAIT_MS_MAX} ms (`timeout_ms`) |"),
        f"| state key | 1..{api_constants.API_STATE_KEY_BYTES_MAX} UTF-8 bytes |",
        "",
        "## Endpoints",
        "",
    ]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            route = f"{method.upper()} {path}"
            lines += [f"### `{route}`", "", f"**{operation.get('summary', '')}**", ""]
            if operation.get("description"):
                lines += [operation["description"].strip(), ""]
            lines += _params_table(operation)
            statuses = ", ".join(f"`{s}`" for s in operation.get("responses", {}))
            lines += [f"Statuses: {statuses}", ""]
            for ex in examples.get(route, []):
                lines += ["```http", f"{ex.method} {ex.path}"]
                if ex.body is not None:
                    body = ex.body if isinstance(ex.body, str) else json.dumps(ex.body)
                    lines += ["Content-Type: application/json", "", body]
                lines += ["```", "", f"→ `{ex.status}` `{ex.content_type}`", "",
                          "```json" if "json" in ex.content_type else "```", _cut(ex.response), "```", ""]
    lines += [
        "## Problem reasons",
        "",
        "Reasons raised by transaction handlers that are not listed (for example identity rules)",
        "keep their own code and answer 422 (403/409 where the error class says so).",
        "",
        "| reason | status | title |",
        "|---|---|---|",
    ]
    lines += [f"| `{reason}` | {info.status} | {info.title} |" for reason, info in REASONS.items()]
    lines += [
        "",
        "## Metrics",
        "",
        "`/metrics` serves Prometheus text from a registry private to the app:",
        "",
        "| metric | labels | meaning |",
        "|---|---|---|",
        "| `imi_api_requests_total` | route (template), method, status | requests served |",
        "| `imi_api_request_seconds` | route | time to serve (histogram) |",
        "| `imi_api_tx_submitted_total` | | transactions accepted into the mempool |",
        "| `imi_api_tx_rejected_total` | reason | transactions refused, by problem reason |",
        "| `imi_api_tx_commit_timeouts_total` | | `?wait=commit` requests that timed out |",
        "| `imi_height` | | height of the last committed block |",
    ]
    # The node-status rows are the metrics' own help texts (node.api.metrics).
    lines += [f"| `{name}{'_total' if counter else ''}` | | {_lower_first(help_text)} |"
              for name, help_text, counter in STATUS_METRICS.values()]
    lines += [f"| `{consensus_timing_metric(name)}` | | histogram: {_lower_first(help_text)} |"
              for name, help_text in TIMING_HELP.items()]
    lines += [
        "",
        (f"The last {len(STATUS_METRICS) + len(TIMING_HELP)} come from the node's own status at "
         "each scrape (the histograms from `node.timings`); a node that does not report one "
         "(the in-process dev node) lacks it."),
        "",
        "## Adding routers (identity endpoints)",
        "",
        "`create_app(node, extra_routers=[...])` takes `APIRouter`s, or factories",
        "`ApiContext -> APIRouter` (`node.api.context`) for routers that need the node, the",
        "`ChainReader` (blocks, state with proofs) or the metrics. Raise",
        "`node.api.problems.ApiProblem(reason, detail)` or any error of ours (`ledger.errors.ImiError`,",
        "with its `reason`); `node.api.problems.problem_for` turns each into a problem document. Add new",
        "reasons to `node.api.problems.REASONS` to fix their status and title; a service with reasons",
        "of its own passes `status_of` to `install_problem_handlers` (the issuer service does).",
        "",
        "`imi node start` mounts the identity endpoints this way (`identity.http.node_routes.ROUTERS`):",
        "`GET /v1/dids/{did}`, `GET /v1/issuers/{did}`, `GET /v1/services/{did}`, `GET /v1/credential-types/{vct}`,",
        "`GET /v1/status-lists/{id}` and `POST /v1/verify`. They follow the same conventions",
        "(proofs with header and certificate, problem+json errors); this page, generated without",
        "them (`node` does not import `identity`), does not list their parameters: a running",
        "validator serves the complete OpenAPI document at `/openapi.json` and `/docs`.",
        "",
    ]
    return "\n".join(lines)


def generate() -> str:
    examples = asyncio.run(_examples())
    spec = create_app(docs_node()).openapi()
    return render(spec, examples)


def main() -> None:
    sys.stdout.write(generate())


if __name__ == "__main__":
    main()


__all__ = ["docs_node", "generate", "render"]
