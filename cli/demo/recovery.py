"""The lost phone: the citizen recovers the DID with the recovery kit's pre-committed key.

:func:`recover_did` — the encrypted wallet backup is restored on a new phone and
``did.rotate`` is signed by the recovery kit's key (:func:`identity.holder.rotate_did`),
committing to a key in a new kit; the DID-bound credentials verify with the new key, and
a presentation signed with the old key (the lost phone) is rejected.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cli.demo.citizen import WALLET_PASSWORD, Citizen, new_kit
from cli.demo.consortium import Consortium
from cli.demo.service import (
    Verdict,
    answer_requests,
    service_requests,
    verify_locally,
    verify_remotely,
)
from identity.fetcher import IdentityHttpFetcher
from identity.holder import rotate_did
from identity.light_client import LightClient
from identity.wallet import Wallet


@dataclass(frozen=True, slots=True)
class Recovery:
    did: str
    old_key: str
    new_key: str
    height: int
    version: int
    new_wallet: Path
    new_kit: Path
    verdicts_new_key: list[Verdict]
    verdict_old_key: Verdict


def _did_version(c: Consortium, reader: str, did: str) -> tuple[str, int]:
    """(controller key id, version) of ``did`` read through the light client."""
    fetcher = IdentityHttpFetcher(c.apis[reader])
    try:
        resolved = LightClient(c.genesis, fetcher).resolve_did(did, int(time.time() * 1000))
    finally:
        fetcher.close()
    methods = resolved["didDocument"]["authentication"]
    return str(methods[0]).split("#", 1)[1], int(resolved["didDocumentMetadata"]["versionId"])


def restore_and_rotate(c: Consortium, citizen: Citizen, workdir: Path, *, fast: bool = False) -> tuple[int, Wallet, Path]:
    """The new phone: the encrypted backup restored, then ``did.rotate`` signed by the recovery
    kit's key (:func:`identity.holder.rotate_did`), committing to a key in a NEW kit.
    Returns (a height at or after the rotation, the new phone's wallet, the new kit)."""
    new_path = workdir / "new-phone-wallet.imi"
    shutil.copyfile(citizen.backup_path, new_path)
    new_phone = Wallet.open(new_path, WALLET_PASSWORD)
    next_key = citizen.kit_key()
    kit_path = workdir / "recovery-kit-2.imi"
    with c.wait(f"did.rotate → {c.writer}, waiting for commit"):
        new_next = rotate_did(new_phone, c.client(), citizen.did, next_key, new_kit(kit_path, fast))
    new_phone.save()
    new_next_id = new_next.key_id
    citizen.wallet_path, citizen.kit_path = new_path, kit_path
    citizen.key_id, citizen.next_key_id = next_key.key_id, new_next_id
    return c.height(c.writer), new_phone, kit_path


def recover_did(c: Consortium, citizen: Citizen, workdir: Path, *, reader: str, remote: str,
                vcts: list[str], fast: bool = False) -> Recovery:
    """Step 6: restore + rotate; the DID-bound credentials verify with the new key, the stolen
    phone's answers (old key) do not."""
    lost_phone, old_key = citizen.phone(), citizen.key_id  # the thief's copy: old key + credentials
    height, new_phone, new_kit = restore_and_rotate(c, citizen, workdir, fast=fast)
    for name in (reader, remote):
        c.wait_height(name, height)
    requests = service_requests()
    chosen = {vct: requests[vct] for vct in vcts}
    answers = answer_requests(new_phone, chosen)
    verdicts = []
    for vct, presentation in answers.items():
        verdicts.append(verify_locally(c, reader, vct, presentation, chosen[vct]))
        verdicts.append(verify_remotely(c, remote, vct, presentation, chosen[vct]))
    stolen = answer_requests(lost_phone, {vcts[0]: chosen[vcts[0]]})[vcts[0]]
    old = verify_locally(c, reader, vcts[0], stolen, chosen[vcts[0]])
    key_now, version = _did_version(c, reader, citizen.did)
    return Recovery(citizen.did, old_key, key_now, height, version, new_phone.path, new_kit, verdicts, old)



__all__ = ["Recovery", "recover_did", "restore_and_rotate"]
