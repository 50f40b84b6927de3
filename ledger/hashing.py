"""Domain-separated SHA-256.

Every hashed kind has its own one-byte tag, prefixed to the bytes before
hashing, so a hash of one kind can never be replayed as another. The Merkle
tags are those of RFC 9162 §2.1.1 (leaf 0x00, interior node 0x01); the rest
are ours.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

from ledger.encoding import Value, encode


class HashTag(IntEnum):
    MERKLE_LEAF = 0x00  # RFC 9162
    MERKLE_NODE = 0x01  # RFC 9162
    TX = 0x10
    BLOCK_HEADER = 0x11
    VOTE = 0x12
    STATE_LEAF = 0x13
    STATE_NODE = 0x14
    VALIDATOR_SET = 0x15
    PROPOSAL = 0x16
    STATE_KEY = 0x17
    CONSENSUS_MESSAGE = 0x18
    CREDENTIAL_ANCHOR = 0x19
    KEY_COMMITMENT = 0x1A
    GENESIS = 0x1B


def tagged_hash(tag: HashTag, data: bytes) -> bytes:
    """SHA-256 over ``tag || data`` (32 bytes)."""
    return _sha256(_TAG_BYTES[tag] + data).digest()


_sha256 = hashlib.sha256
# Each tag's one-byte prefix, built once: this function runs for every tree node,
# log node and transaction id.
_TAG_BYTES: dict[HashTag, bytes] = {tag: bytes((int(tag),)) for tag in HashTag}


def hash_value(tag: HashTag, value: Value) -> bytes:
    """Hash the canonical encoding of ``value`` under ``tag``."""
    return tagged_hash(tag, encode(value))


def sha256(data: bytes) -> bytes:
    """Plain SHA-256, for formats defined outside imi (JWK thumbprints, SD-JWT digests)."""
    return hashlib.sha256(data).digest()


__all__ = ["HashTag", "hash_value", "sha256", "tagged_hash"]
