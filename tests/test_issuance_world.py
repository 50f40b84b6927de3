"""A ledger-backed issuance world for the issuance and flow tests (no tests here).

An in-process DevNode (real execution, real certificates) serves the node API with the
identity routers through a Starlette TestClient; the trustees accredit an agency for
:data:`VCT`, the agency publishes it and creates status list :data:`LIST_ID`; an
:class:`~identity.issuer_agent.IssuerAgent` and its service (:func:`create_issuer_app`)
run over it. ``route`` gives an httpx client that sends ``http://node.test`` to the node
and ``http://issuer.test`` to the issuer service (what the CLI tests patch in).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from identity import did as didmod
from identity.constants import ISSUER_SERVICE_TYPE
from identity.fetcher import IdentityHttpFetcher
from identity.http.issuer_service import create_issuer_app
from identity.http.node_routes import ROUTERS
from identity.issuer_agent import IssuerAgent, Register
from identity.ledger_client import NodeClient
from identity.light_client import LightClient
from identity.rules import IDENTITY_HANDLERS
from identity.wallet import KdfParams, Wallet
from ledger.execution import DEVNET_HANDLERS
from ledger.keys import SigningKey
from node.api.app import create_app
from tests.test_node_api_support import InProcessNode

NODE_URL = "http://node.test"
ISSUER_URL = "http://issuer.test"
VCT = "urn:imi:pid:1"
RECOVERY_VCT = "imi:recovery"  # identity.ledger_constants.RECOVERY_VCT_DEFAULT
LIST_ID = "pid-1"
ADMIN_TOKEN = "s3cret-admin"
AGE_THRESHOLDS = (14, 16, 18, 21, 65)  # as the demo's identity type publishes them
CITIZEN_CLAIMS = {"given_name": "Ada", "family_name": "Lovelace", "birthdate": "1990-12-10",
                  "address": {"locality": "London", "street_address": "12 St James's Square"}}


def _forward(clients: dict[str, TestClient]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        client = clients.get(request.url.host)
        if client is None:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        target = request.url.raw_path.decode("ascii")
        answer = client.request(request.method, target, content=request.content,
                                headers={k: v for k, v in request.headers.items() if k.lower() != "host"})
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return httpx.MockTransport(handle)


@dataclass
class World:
    node: InProcessNode
    node_http: TestClient
    agency_key: SigningKey
    agency_did: str
    agent: IssuerAgent
    issuer_http: TestClient

    def node_client(self) -> NodeClient:
        return NodeClient(NODE_URL, client=self.node_http)

    def light_client(self) -> LightClient:
        return LightClient(self.node.genesis, IdentityHttpFetcher(NODE_URL, client=self.node_http))

    def route(self) -> httpx.Client:
        """An httpx client reaching the node and the issuer service by their test URLs."""
        return httpx.Client(transport=_forward({"node.test": self.node_http, "issuer.test": self.issuer_http}))

    def wallet(self, path: Path) -> Wallet:
        return Wallet.create(path, "pw", kdf=KdfParams.fastest())

    def gov(self, type_: str, payload: dict[str, Any]) -> None:
        nc = self.node_client()
        nc.submit(nc.build(type_, "gov", payload, *self.node.consortium.trustee_keys[:2]))

    def write_genesis(self, path: Path) -> Path:
        path.write_text(self.node.genesis.dumps())
        return path


def build_world(register: dict[str, Any] | None = None) -> World:
    """Accredited agency, published vct, a 2-bit status list; ``register`` in the JSON form
    of :class:`Register` (default: subject ``citizen-1`` with :data:`CITIZEN_CLAIMS`)."""
    node = InProcessNode(handlers={**DEVNET_HANDLERS, **IDENTITY_HANDLERS})
    node.commit()  # block 1, so /v1/blocks/latest answers
    node_http = TestClient(create_app(node, extra_routers=ROUTERS), base_url=NODE_URL,
                           raise_server_exceptions=False)
    nc = NodeClient(NODE_URL, client=node_http)
    key, did = setup_ledger(node, nc)
    light = LightClient(node.genesis, IdentityHttpFetcher(NODE_URL, client=node_http))
    reg = Register.from_json(register if register is not None else {"citizen-1": {"claims": CITIZEN_CLAIMS}})
    agent = IssuerAgent(did, key, nc, light, LIST_ID, reg, credential_issuer=ISSUER_URL)
    # one test client is one "client" to the rate limiter: let the world's many tests through
    issuer_http = TestClient(create_issuer_app(agent, admin_token=ADMIN_TOKEN, token_rate=(1000.0, 1000)),
                             base_url=ISSUER_URL,
                             raise_server_exceptions=False)
    return World(node, node_http, key, did, agent, issuer_http)


def setup_ledger(node: InProcessNode, nc: NodeClient, issuer_url: str = ISSUER_URL) -> tuple[SigningKey, str]:
    """The agency's DID (its document naming ``issuer_url`` as its OpenID4VCI endpoint), its
    accreditation (by two trustees) for :data:`VCT` and recovery, the published type and
    status list :data:`LIST_ID`; returns (agency key, agency DID)."""
    key, next_key = SigningKey.generate(), SigningKey.generate()
    commitment = didmod.key_commitment(next_key.public_key.to_jwk())
    did = didmod.derive_did(key.public_key.to_jwk(), commitment)
    nc.submit(nc.build("did.create", did, {"jwk": dict(key.public_key.to_jwk()), "next_key_commitment": commitment,
                                           "services": [{"id": "oid4vci", "type": ISSUER_SERVICE_TYPE,
                                                         "endpoint": issuer_url}]}, key))
    nc.submit(nc.build("gov.issuer_accredit", "gov", {"did": did, "name": "Civil Affairs",
                                                      "vcts": [VCT, RECOVERY_VCT]},
                       *node.consortium.trustee_keys[:2]))
    nc.submit(nc.build("vct.publish", did, {"vct": VCT, "name": "PID", "claims": sorted(CITIZEN_CLAIMS),
                                            "predicates": {"age_equal_or_over": list(AGE_THRESHOLDS)}}, key))
    nc.submit(nc.build("status.create_list", did, {"list_id": LIST_ID, "bits": 2, "size": 1024}, key))
    return key, did


def issuer_dir(key: SigningKey, did: str, directory: Path, register: dict[str, Any]) -> Path:
    """An issuer directory (``issuer.json`` + key + register) for ``imi issue serve``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "issuer.jwk").write_text(json.dumps(key.to_private_jwk()))
    (directory / "register.json").write_text(json.dumps(register))
    (directory / "issuer.json").write_text(json.dumps({"did": did, "key": "issuer.jwk",
                                                       "list_id": LIST_ID, "register": "register.json"}))
    return directory


__all__ = ["ADMIN_TOKEN", "AGE_THRESHOLDS", "CITIZEN_CLAIMS", "ISSUER_URL", "LIST_ID", "NODE_URL", "VCT", "World", "build_world",
           "issuer_dir", "setup_ledger"]
