"""Generate tests/vectors/merkle_rfc6962.json: Merkle log vectors with mutated negatives.

Run ``python -m tests.vectors.generate_merkle`` from the repository root; the
output is deterministic.

The eight leaf inputs are the ones Certificate Transparency and
transparency-dev/merkle test with. Their published roots and the published
inclusion and consistency proofs (listed below as data) are checked against
the recursive reference in ``merkle_reference.py`` before anything is written;
every other proof comes from the reference. Negative cases are mutations of the
positive ones (a flipped bit in each proof hash, wrong index or sizes, an extra,
missing or swapped hash, wrong leaf or roots); each is kept only if the
reference says it is really invalid, and ``ledger.merkle`` must reject it. A
negative case lists only the fields that differ from positive case ``of``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger import merkle
from ledger.errors import ProofError
from tests.vectors import merkle_reference as ref

OUTPUT = Path(__file__).with_name("merkle_rfc6962.json")

LEAF_INPUTS = [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
# Published roots for sizes 1..8 (RFC 6962 test data of CT / transparency-dev).
PUBLISHED_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
_H = {
    "l1": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "l4": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "l6": "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "n23": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "n45": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "n67": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "n0123": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "n4567": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "n01": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "l0": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
}
# Published proofs: (0-based index, size, proof) and (old size, new size, proof).
PUBLISHED_INCLUSION = [
    (0, 8, ["l1", "n23", "n4567"]),
    (5, 8, ["l4", "n67", "n0123"]),
    (2, 3, ["n01"]),
    (1, 5, ["l0", "n23", "l4"]),
]
PUBLISHED_CONSISTENCY = [
    (1, 8, ["l1", "n23", "n4567"]),
    (6, 8, ["n45", "n67", "n0123"]),
    (2, 5, ["n23", "l4"]),
    (6, 7, ["n45", "l6", "n0123"]),
]
_SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _leaves() -> list[bytes]:
    return [bytes.fromhex(text) for text in LEAF_INPUTS]


def _check_published(leaves: list[bytes]) -> None:
    for size, root in enumerate(PUBLISHED_ROOTS, start=1):
        if ref.mth(leaves[:size]).hex() != root:
            raise SystemExit(f"reference root of size {size} differs from the published one")
    for index, size, names in PUBLISHED_INCLUSION:
        if [h.hex() for h in ref.path(index, leaves[:size])] != [_H[n] for n in names]:
            raise SystemExit(f"reference inclusion proof ({index}, {size}) differs from the published one")
    for old, new, names in PUBLISHED_CONSISTENCY:
        if [h.hex() for h in ref.proof(old, leaves[:new])] != [_H[n] for n in names]:
            raise SystemExit(f"reference consistency proof ({old}, {new}) differs from the published one")


def _flip(data: bytes, bit: int) -> bytes:
    return bytes([data[0] ^ (1 << bit)]) + data[1:]


def _inclusion_is_valid(leaves: list[bytes], case: dict[str, Any]) -> bool:
    index, size = case["index"], case["size"]
    if not 0 <= index < size <= len(leaves):
        return False
    sub = leaves[:size]
    return (
        case["leaf_hash"] == merkle.leaf_hash(sub[index])
        and case["root"] == ref.mth(sub)
        and case["proof"] == ref.path(index, sub)
    )


def _consistency_is_valid(leaves: list[bytes], case: dict[str, Any]) -> bool:
    old, new = case["old_size"], case["new_size"]
    if old == 0 and new >= 0:
        # RFC 9162 defines no proof from the empty log: every log extends it, so
        # an empty proof with the empty old root is valid whatever new_root says.
        return bool(case["proof"] == [] and case["old_root"] == ref.mth([])
                    and (new > 0 or case["new_root"] == ref.mth([])))
    if not 0 <= old <= new <= len(leaves):
        return False
    if case["old_root"] != ref.mth(leaves[:old]) or case["new_root"] != ref.mth(leaves[:new]):
        return False
    expected = [] if old in (0, new) else ref.proof(old, leaves[:new])
    return bool(case["proof"] == expected)


def _inclusion_mutations(case: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    proof: list[bytes] = case["proof"]
    # No "size + 1": an inclusion proof does not authenticate the size on its own
    # (leaf 0 of 3 and of 4 leaves has the same path shape); the root binds it.
    out = [
        ("index - 1", {**case, "index": case["index"] - 1}),
        ("index + 1", {**case, "index": case["index"] + 1}),
        ("index ^ 2", {**case, "index": case["index"] ^ 2}),
        ("size * 2", {**case, "size": case["size"] * 2}),
        ("size // 2", {**case, "size": case["size"] // 2}),
        ("wrong leaf hash", {**case, "leaf_hash": _flip(case["leaf_hash"], 0)}),
        ("empty-tree root", {**case, "root": merkle.EMPTY_ROOT}),
        ("unrelated root", {**case, "root": _SOME_HASH}),
        ("extra trailing root", {**case, "proof": [*proof, case["root"]]}),
        ("extra trailing zero hash", {**case, "proof": [*proof, bytes(32)]}),
        ("extra leading root", {**case, "proof": [case["root"], *proof]}),
        ("short trailing hash", {**case, "proof": [*proof, b"\x00"]}),
    ]
    for i in range(len(proof)):
        for bit in (3,):
            mutated = list(proof)
            mutated[i] = _flip(mutated[i], bit)
            out.append((f"proof[{i}] bit {bit} flipped", {**case, "proof": mutated}))
    if proof:
        out.append(("last hash missing", {**case, "proof": proof[:-1]}))
        out.append(("first hash missing", {**case, "proof": proof[1:]}))
    for i in range(len(proof) - 1):
        swapped = list(proof)
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        out.append((f"proof[{i}] and proof[{i + 1}] swapped", {**case, "proof": swapped}))
    return out


def _consistency_mutations(case: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    proof: list[bytes] = case["proof"]
    # No "new size - 1", for the reason given for inclusion: 1 -> 4 and 1 -> 3
    # have proofs of the same shape, and only the roots tell the sizes apart.
    out = [
        ("old size - 1", {**case, "old_size": case["old_size"] - 1}),
        ("old size + 1", {**case, "old_size": case["old_size"] + 1}),
        ("old size ^ 2", {**case, "old_size": case["old_size"] ^ 2}),
        ("new size * 2", {**case, "new_size": case["new_size"] * 2}),
        ("new size // 2", {**case, "new_size": case["new_size"] // 2}),
        ("wrong old root", {**case, "old_root": _flip(case["old_root"], 0)}),
        ("wrong new root", {**case, "new_root": _flip(case["new_root"], 0)}),
        ("roots swapped", {**case, "old_root": case["new_root"], "new_root": case["old_root"]}),
        ("empty proof", {**case, "proof": []}),
        ("extra trailing old root", {**case, "proof": [*proof, case["old_root"]]}),
        ("extra trailing new root", {**case, "proof": [*proof, case["new_root"]]}),
        ("extra leading old root", {**case, "proof": [case["old_root"], *proof]}),
        ("extra leading new root", {**case, "proof": [case["new_root"], *proof]}),
        ("extra trailing zero hash", {**case, "proof": [*proof, bytes(32)]}),
        ("short trailing hash", {**case, "proof": [*proof, b"\x00"]}),
    ]
    for i in range(len(proof)):
        for bit in (4,):
            mutated = list(proof)
            mutated[i] = _flip(mutated[i], bit)
            out.append((f"proof[{i}] bit {bit} flipped", {**case, "proof": mutated}))
    if proof:
        out.append(("last hash missing", {**case, "proof": proof[:-1]}))
        out.append(("first hash missing", {**case, "proof": proof[1:]}))
        out.append(("first hash repeated", {**case, "proof": [proof[0], *proof]}))
    for i in range(len(proof) - 1):
        swapped = list(proof)
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        out.append((f"proof[{i}] and proof[{i + 1}] swapped", {**case, "proof": swapped}))
    return out


def _rejects(check: Callable[..., None], *args: Any) -> bool:
    try:
        check(*args)
    except ProofError:
        return True
    return False


def _hexed(case: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in case.items():
        if isinstance(value, bytes):
            out[key] = value.hex()
        elif isinstance(value, list):
            out[key] = [item.hex() for item in value]
        else:
            out[key] = value
    return out


def _negative(of: int, mutation: str, case: dict[str, Any], bad: dict[str, Any]) -> dict[str, Any]:
    """A negative case as the fields that differ from positive case number ``of``."""
    changed = {key: value for key, value in bad.items() if case[key] != value}
    return {"of": of, "mutation": mutation, **_hexed(changed)}


def build() -> dict[str, Any]:
    leaves = _leaves()
    _check_published(leaves)
    published_inc = {(i, s) for i, s, _ in PUBLISHED_INCLUSION}
    published_con = {(o, n) for o, n, _ in PUBLISHED_CONSISTENCY}
    inclusion, inclusion_bad = [], []
    for size in range(1, len(leaves) + 1):
        sub = leaves[:size]
        for index in range(size):
            case = {
                "index": index, "size": size, "leaf_hash": merkle.leaf_hash(sub[index]),
                "root": ref.mth(sub), "proof": ref.path(index, sub),
            }
            merkle.verify_inclusion(case["index"], size, case["leaf_hash"], case["proof"], case["root"])
            inclusion.append({**_hexed(case), "published": (index, size) in published_inc})
            for mutation, bad in _inclusion_mutations(case):
                if _inclusion_is_valid(leaves, bad):
                    continue
                if not _rejects(merkle.verify_inclusion,
                                bad["index"], bad["size"], bad["leaf_hash"], bad["proof"], bad["root"]):
                    raise SystemExit(f"inclusion ({index}, {size}) {mutation}: accepted")
                inclusion_bad.append(_negative(len(inclusion) - 1, mutation, case, bad))
    consistency, consistency_bad = [], []
    for new in range(len(leaves) + 1):
        for old in range(new + 1):
            proof = [] if old in (0, new) else ref.proof(old, leaves[:new])
            case = {
                "old_size": old, "new_size": new, "old_root": ref.mth(leaves[:old]),
                "new_root": ref.mth(leaves[:new]), "proof": proof,
            }
            merkle.verify_consistency(old, new, case["old_root"], case["new_root"], proof)
            consistency.append({**_hexed(case), "published": (old, new) in published_con})
            for mutation, bad in _consistency_mutations(case):
                if _consistency_is_valid(leaves, bad):
                    continue
                if not _rejects(merkle.verify_consistency,
                                bad["old_size"], bad["new_size"], bad["old_root"], bad["new_root"], bad["proof"]):
                    raise SystemExit(f"consistency ({old}, {new}) {mutation}: accepted")
                consistency_bad.append(_negative(len(consistency) - 1, mutation, case, bad))
    return {
        "about": "RFC 9162 / RFC 6962 Merkle log vectors over the CT test leaves; "
        "generated by tests/vectors/generate_merkle.py",
        "leaf_inputs": LEAF_INPUTS,
        "roots": [ref.mth(leaves[:size]).hex() for size in range(len(leaves) + 1)],
        "inclusion": inclusion,
        "consistency": consistency,
        "inclusion_invalid": inclusion_bad,
        "consistency_invalid": consistency_bad,
    }


def render(document: dict[str, Any]) -> str:
    """One case per line, so that diffs of the vector file stay readable."""
    lines = ["{"]
    items = list(document.items())
    for position, (key, value) in enumerate(items):
        comma = "," if position < len(items) - 1 else ""
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f" {json.dumps(key)}: [")
            for i, item in enumerate(value):
                lines.append("  " + json.dumps(item, sort_keys=True) + ("," if i < len(value) - 1 else ""))
            lines.append(" ]" + comma)
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    OUTPUT.write_text(render(build()), encoding="utf-8")


if __name__ == "__main__":
    main()
