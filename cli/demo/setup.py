"""The demo's setup on a running devnet, shared by ``make run`` (:mod:`cli.demo.story`) and
``imi devnet up --demo`` (:mod:`cli.demo.devnet_demo`).

:class:`DemoLedger` is what the setup needs from a chain: its genesis, where services run
(:class:`Site`), ``submit`` (a transaction, waited for commit) and ``gov`` (a governance
transaction signed by k of the trustees). :class:`cli.demo.consortium.Consortium` is one
(the story's, with its waits); :class:`NodeLedger` is another (one node and the trustee
keys of a devnet directory). :func:`open_verifier` gives a service a did:imi, has the
trustees register it on the ledger with the claims it may ask, and starts its verifier
service; :mod:`cli.demo.agencies` does the same for issuers.

No module of the setup imports :mod:`cli.devnet`: ``imi devnet`` imports them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cli.demo.issuer_process import VerifierProcess, launch_verifier_process
from identity import did as didmod
from identity.ledger_client import NodeClient
from ledger.encoding import Value
from ledger.genesis import Genesis
from ledger.keys import SigningKey


@dataclass(frozen=True, slots=True)
class Site:
    """Where the demo's services run: under the devnet ``directory``, over ``node`` (an API base
    URL), trusting the devnet's genesis, with the code of ``code_root``."""

    directory: Path
    node: str
    code_root: Path

    @property
    def genesis_file(self) -> Path:
        return self.directory / "genesis.json"


class DemoLedger(Protocol):
    """A chain the demo sets itself up on (see the module doc)."""

    @property
    def genesis(self) -> Genesis: ...

    @property
    def site(self) -> Site: ...

    def submit(self, type_: str, sender: str, payload: Mapping[str, Value], *keys: SigningKey) -> dict[str, Any]: ...

    def gov(self, type_: str, payload: Mapping[str, Value]) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class NodeLedger:
    """A devnet seen through one node, with its trustees' keys (``DIR/trustees/*.jwk``)."""

    genesis: Genesis
    trustees: tuple[SigningKey, ...]
    site: Site

    @classmethod
    def open(cls, site: Site) -> NodeLedger:
        """Read the genesis and trustee keys of ``site.directory``; ValueError if they are unusable."""
        try:
            genesis = Genesis.loads(site.genesis_file.read_text())
            trustees = tuple(SigningKey.from_private_jwk(json.loads(p.read_text()))
                             for p in sorted((site.directory / "trustees").glob("*.jwk")))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{site.directory}: cannot read the genesis or trustee keys: {exc}") from exc
        if len(trustees) < genesis.trustee_threshold:
            raise ValueError(f"{site.directory} holds {len(trustees)} trustee keys; the genesis needs "
                             f"{genesis.trustee_threshold}")
        return cls(genesis, trustees, site)

    def submit(self, type_: str, sender: str, payload: Mapping[str, Value], *keys: SigningKey) -> dict[str, Any]:
        node = NodeClient(self.site.node)
        try:
            return node.submit(node.build(type_, sender, payload, *keys, chain_id=self.genesis.chain_id))
        finally:
            node.close()

    def gov(self, type_: str, payload: Mapping[str, Value]) -> dict[str, Any]:
        return self.submit(type_, "gov", payload, *self.trustees[: self.genesis.trustee_threshold])


def open_verifier(ledger: DemoLedger, *, slug: str, name: Mapping[str, Value], purpose: Mapping[str, Value],
                  queries: list[dict[str, Value]], node: str | None = None) -> VerifierProcess:
    """A new service: its did:imi (``did.create``), its registration by the trustees
    (``gov.service_register``: ``name`` and ``purpose`` in en and zh-CN, ``queries`` the
    ``[{vct, claims: [path, ...]}]`` it may ask), and its verifier service spawned over
    ``node`` (default the site's) in ``DIR/services/<slug>-<end of DID>`` — not yet waited for
    (:meth:`~cli.demo.issuer_process.ServiceProcess.started`)."""
    key, next_key = SigningKey.generate("EdDSA"), SigningKey.generate("EdDSA")
    jwk: dict[str, Value] = dict(key.public_key.to_jwk())
    commitment = didmod.key_commitment(next_key.public_key.to_jwk())
    did = didmod.derive_did(jwk, commitment)
    ledger.submit("did.create", did, {"jwk": jwk, "next_key_commitment": commitment}, key)
    ledger.gov("gov.service_register", {"did": did, "name": dict(name), "purpose": dict(purpose),
                                        "queries": list(queries)})
    site = ledger.site
    return launch_verifier_process(site.directory / "services" / f"{slug}-{did[-8:]}", did=did, key=key,
                                   node=node or site.node, genesis=site.genesis_file, code_root=site.code_root)


__all__ = ["DemoLedger", "NodeLedger", "Site", "open_verifier"]
