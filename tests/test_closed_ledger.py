"""A closed ledger: devnet-only transaction types exist only on a chain whose genesis
enables them, and the genesis ceremony makes a chain where DIDs are registered through
an accredited registrar (no self-registration) unless the trustees ask otherwise."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.main import app as cli_app
from cli.node_cmd import compose_handlers
from identity import did as didmod
from identity.rules import IDENTITY_HANDLERS
from ledger.errors import BlockError, LedgerError
from ledger.execution import DEVNET_HANDLERS, BlockContext, Executor, chain_handlers, genesis_state
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.tx import Transaction
from node.service import NodeConfig, ValidatorService
from tests.factories import consortium
from tests.test_identity_helpers import DictState, det_key


def _imi(*args: str) -> Result:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _note(chain_id: str, now_ms: int) -> Transaction:
    key = SigningKey.generate()
    return Transaction.create(chain_id=chain_id, type="test.note", sender=key.key_id,
                              payload={"data": b"anyone"}, expires_at_ms=now_ms + 60_000).sign(key)


def _service(directory: Path) -> ValidatorService:
    handlers, routers = compose_handlers()
    return ValidatorService(NodeConfig.load(directory / "validators" / "v0"), handlers, extra_routers=routers)


@pytest.mark.parametrize("devnet", [False, True])
def test_a_node_knows_test_note_only_on_a_devnet_chain(tmp_path: Path, devnet: bool) -> None:
    """`imi node start` composes the devnet handlers on every chain; the service must drop
    them unless the genesis enables them (mempool admission runs the executor's check)."""
    done = _imi("genesis", "new", "--dir", str(tmp_path), "--validators", "1", "--trustees", "1",
                "--threshold", "1", *(["--devnet"] if devnet else []), "--json")
    assert done.exit_code == 0, done.output
    service = _service(tmp_path)
    try:
        note = _note(service.genesis.chain_id, service.genesis.time_ms + 1000)
        if devnet:
            assert service.mempool.add(note) is True
        else:
            with pytest.raises(LedgerError) as refused:
                service.mempool.add(note)
            assert refused.value.reason == "unknown-type"
            assert len(service.mempool) == 0
    finally:
        service._wal.close()
        service._kv.close()


def test_chain_handlers_drops_only_the_devnet_types() -> None:
    closed = consortium().genesis
    assert closed.devnet is False
    handlers = chain_handlers(closed, {**DEVNET_HANDLERS, **IDENTITY_HANDLERS})
    assert "test.note" not in handlers
    assert set(handlers) == set(IDENTITY_HANDLERS)


def test_the_devnet_field_keeps_old_genesis_files_and_their_hash() -> None:
    genesis = consortium().genesis
    old = genesis.to_json()
    del old["devnet"]  # a file written before the field existed
    loaded = Genesis.from_json(old)  # its embedded hash still matches: the field is absent when false
    assert loaded.devnet is False and loaded.hash == genesis.hash
    opened = Genesis.from_json({k: v for k, v in {**old, "devnet": True}.items() if k != "hash"})
    assert opened.devnet is True and opened.hash != genesis.hash
    assert Genesis.loads(opened.dumps()) == opened and Genesis.loads(opened.dumps()).hash == opened.hash
    with pytest.raises(BlockError):
        Genesis.from_json({**old, "devnet": "yes", "hash": genesis.hash.hex()})
    with pytest.raises(BlockError):  # flipping the flag breaks the embedded hash
        Genesis.from_json({**old, "devnet": True})


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("closed-ceremony")
    done = _imi("node", "init", "--dir", str(root / "police"), "--name", "police",
                "--listen", "police.imi.example:7000", "--json")
    assert done.exit_code == 0, done.output
    (root / "police.entry.json").write_text(done.stdout)
    assert _imi("key", "new", "--alg", "EdDSA", "--out", str(root / "trustee.jwk")).exit_code == 0
    public = _imi("key", "public", str(root / "trustee.jwk"))
    (root / "trustee.pub.jwk").write_text(public.stdout)
    return root


def _ceremony_genesis(root: Path, out: str, *extra: str) -> Result:
    return _imi("genesis", "new", "--dir", str(root / out), "--chain-id", "imi-closed", "--threshold", "1",
                "--entry", str(root / "police.entry.json"), "--trustee-jwk", str(root / "trustee.pub.jwk"),
                *extra, "--json")


def _self_registered_create(genesis: Genesis) -> Transaction:
    key, next_key = det_key("closed/0"), det_key("closed/1")
    commitment = didmod.key_commitment(next_key.public_key.to_jwk())
    did = didmod.derive_did(key.public_key.to_jwk(), commitment)
    nonce = hashlib.sha256(b"closed").digest()[:16]
    return Transaction.create(chain_id=genesis.chain_id, type="did.create", sender=did,
                              payload={"jwk": dict(key.public_key.to_jwk()), "next_key_commitment": commitment},
                              expires_at_ms=genesis.time_ms + 600_000, nonce=nonce).sign(key)


def _admission(genesis: Genesis, tx: Transaction) -> str | None:
    executor = Executor(genesis.chain_id, chain_handlers(genesis, {**DEVNET_HANDLERS, **IDENTITY_HANDLERS}))
    ctx = BlockContext(genesis.chain_id, 1, genesis.time_ms + 1000, "")
    try:
        executor.check_tx(tx, DictState(genesis_state(genesis)), ctx, lambda _: False)
    except LedgerError as exc:
        return exc.reason
    return None


def test_the_ceremony_makes_a_closed_chain(ceremony: Path) -> None:
    done = _ceremony_genesis(ceremony, "closed")
    assert done.exit_code == 0, done.output
    genesis = Genesis.loads((ceremony / "closed" / "genesis.json").read_text())
    assert genesis.devnet is False
    assert genesis.policy["self_register_dids"] is False
    assert _admission(genesis, _self_registered_create(genesis)) == "self-registration-disabled"
    assert _admission(genesis, _note(genesis.chain_id, genesis.time_ms)) == "unknown-type"


def test_the_ceremony_opens_self_registration_only_when_asked(ceremony: Path) -> None:
    done = _ceremony_genesis(ceremony, "open", "--self-register-dids")
    assert done.exit_code == 0, done.output
    genesis = Genesis.loads((ceremony / "open" / "genesis.json").read_text())
    assert genesis.policy["self_register_dids"] is True and genesis.devnet is False
    assert _admission(genesis, _self_registered_create(genesis)) is None
    refused = _ceremony_genesis(ceremony, "devnet", "--devnet")
    assert refused.exit_code == 1 and "--devnet" in refused.stdout + refused.stderr
    assert not (ceremony / "devnet" / "genesis.json").exists()


def test_a_devnet_genesis_is_open(tmp_path: Path) -> None:
    from cli.devnet import Devnet

    Devnet(tmp_path).create(validators=1)
    genesis = Genesis.loads((tmp_path / "genesis.json").read_text())
    assert genesis.devnet is True and genesis.policy["self_register_dids"] is True
    assert json.loads((tmp_path / "genesis.json").read_text())["devnet"] is True
    assert _admission(genesis, _self_registered_create(genesis)) is None
    assert _admission(genesis, _note(genesis.chain_id, genesis.time_ms)) is None
