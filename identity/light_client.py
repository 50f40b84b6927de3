"""Light client: verify every answer from ONE node against the genesis, never trust it.

Trust starts from the genesis (its validator set certifies block 1). An answer is
accepted only if all of these hold, otherwise :class:`LightClientError` (with a
stable ``reason``) is raised — a wrong answer is never returned as a result:

1. the header is for our chain and carries a commit certificate signed by more
   than two thirds of the power of the validator set in force at its height
   (``CommitCertificate.verify``);
2. that validator set is known: the genesis set, or one reached by following
   certified changes — header ``h`` commits to the set of ``h+1`` in
   ``next_validator_set_hash``, and the set's content is proven from state key
   ``valset/current`` at ``h`` against ``h``'s ``state_root``. Change points are
   found by bisection over heights, so following k changes over n blocks costs
   O(k log n) fetches. Following is incremental: one call follows at most
   :data:`VALSET_CHANGES_FOLLOW_MAX` changes and keeps every change it learned in
   the client's :class:`ValidatorSetHistory`; a call that stops short raises
   ``valset-catching-up`` and the next call resumes where it stopped, so any
   number of changes is followed by a long-lived client (several clients may
   share one history: it is thread-safe);
3. the state proof shows ``key → value`` (or absence) under ``header.state_root``
   (:func:`ledger.state.verify_state_proof`);
4. freshness: for current reads, ``now_ms - header.time_ms <= freshness_ms`` and
   the header is not from the future (beyond :data:`CLOCK_SKEW_MS`). Reads at an
   explicit height are historical and skip this check.

A long-lived client that reads the same keys many times a second (a verifier
service) may pass ``reuse_ms``: a current read that passed every check is then
answered again, without a fetch, for ``reuse_ms`` after it was made (by the
caller's ``now_ms``), and only while it still meets the freshness bound above, so
nothing is accepted that a fresh read from a node lagging by that much would not
have given. Its decoded value is reused too (callers get a new top-level dict each
time; nested values are shared and must not be modified). At most
:data:`READ_REUSE_KEYS_MAX` keys are kept (the least recently read go first). The
default, 0, reads afresh every time.

Trust assumption (documented weak subjectivity): a validator set that was once in
power keeps more than two thirds of its power honest; a client that has been
offline for long should refresh its genesis/trusted set out of band.

Transport-agnostic: a :class:`Fetcher` returns decoded JSON; :class:`HttpFetcher`
maps it onto the node's REST API:

* ``GET /v1/blocks/latest`` → ``{hash, header, certificate}``
* ``GET /v1/state/{key}?height=H`` → ``{key, value (base64url|null), proof, header,
  certificate}`` (``key`` percent-encoded in the path, UTF-8 in the body)
* ``GET /v1/validators?height=H`` (optional in a fetcher; the client reads the set
  through ``/v1/state/valset%2Fcurrent`` so that every set it learns is proven).
"""

from __future__ import annotations

import base64
import bisect
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from identity import did as didmod
from identity import status_list as sl
from identity.errors import LightClientError, NotFoundError, StatusListError
from identity.ledger_constants import (
    CATCH_UP_ROUNDS_MAX,
    CLOCK_SKEW_MS,
    FRESHNESS_MS_DEFAULT,
    LIGHT_CLIENT_FETCHES_MAX,
    READ_REUSE_KEYS_MAX,
    VALSET_CHANGES_FOLLOW_MAX,
    VALSET_HISTORY_MAX,
)
from ledger import statekeys
from ledger.block import BlockHeader, CommitCertificate
from ledger.encoding import Value, decode
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.validators import ValidatorSet

ProofVerifier = Callable[[bytes, bytes, "bytes | None", Any], None]


class Fetcher(Protocol):
    """Where answers come from (HTTP, or an in-memory fake in tests). Returns decoded JSON."""

    def latest_block(self) -> Mapping[str, Any]: ...

    def state(self, key: bytes, height: int | None) -> Mapping[str, Any]: ...

    def validators(self, height: int | None) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Verified:
    """A state read that passed every check: ``value`` is None for a proven absence."""

    key: bytes
    value: bytes | None
    height: int
    block_hash: bytes
    time_ms: int

    def decoded(self) -> Value:
        if self.value is None:
            return None
        try:
            return decode(self.value)
        except LedgerError as exc:
            raise LightClientError(f"certified value is not canonical: {exc}", reason="malformed-value") from exc


@dataclass(slots=True)
class _Kept:
    """A current read kept for reuse: when it was made (caller's clock), and its value once decoded."""

    read_at: int
    verified: Verified
    value: tuple[Value] | None = None


@dataclass(frozen=True, slots=True)
class _Answer:
    header: BlockHeader
    certificate: CommitCertificate
    key: bytes
    value: bytes | None
    proof: Any


def _default_proof_verifier() -> ProofVerifier:
    from ledger.state import verify_state_proof

    return verify_state_proof


def _parse_proof(obj: object) -> Any:
    from ledger.state import StateProof

    return StateProof.from_json(obj)


class ValidatorSetHistory:
    """The certified validator sets learned so far: ``(first height it certifies, set)``
    in height order, the last entry open-ended. Starts from the genesis set.

    Long-lived and shareable: a verifier keeps one for its life and builds cheap
    :class:`LightClient` objects over it (one per request, say), so a change followed
    once is never followed again. Thread-safe: readers take an immutable snapshot;
    one client at a time follows (:attr:`follow_lock`) and appends. At most
    :data:`VALSET_HISTORY_MAX` entries are kept (the oldest go first; reads at heights
    before the oldest kept set are then refused with ``valset-history-pruned``).
    """

    __slots__ = ("_entries", "_lock", "follow_lock")

    def __init__(self, genesis_set: ValidatorSet) -> None:
        self._entries: tuple[tuple[int, ValidatorSet], ...] = ((1, genesis_set),)
        self._lock = threading.Lock()
        self.follow_lock = threading.Lock()  # held by the one client following changes

    def entries(self) -> tuple[tuple[int, ValidatorSet], ...]:
        """An immutable snapshot (safe to read while another thread appends)."""
        return self._entries

    def latest(self) -> tuple[int, ValidatorSet]:
        return self._entries[-1]

    def append(self, start: int, validators: ValidatorSet) -> None:
        """Record that ``validators`` certifies blocks from ``start`` on (after the last entry)."""
        with self._lock:
            if start <= self._entries[-1][0]:
                raise ValueError("validator-set history must grow in height")
            self._entries = (self._entries + ((start, validators),))[-VALSET_HISTORY_MAX:]

    def __len__(self) -> int:
        return len(self._entries)


class LightClient:
    """Verifies answers from one node. Holds the validator sets it has learned, nothing else.

    ``freshness_ms`` bounds how old (by header time) a current answer may be.
    ``history`` is the validator-set history to use and extend (default: a new one
    from the genesis); pass a shared one to keep what was learned across clients.
    ``reuse_ms`` (at most ``freshness_ms``) answers a current read again for that long
    (module doc).
    """

    def __init__(self, genesis: Genesis, fetcher: Fetcher, freshness_ms: int = FRESHNESS_MS_DEFAULT,
                 *, proof_verifier: ProofVerifier | None = None,
                 history: ValidatorSetHistory | None = None, reuse_ms: int = 0) -> None:
        if freshness_ms <= 0:
            raise ValueError("freshness_ms must be positive")
        if not 0 <= reuse_ms <= freshness_ms:
            raise ValueError("reuse_ms must lie in 0..freshness_ms")
        self.genesis = genesis
        self.fetcher = fetcher
        self.freshness_ms = freshness_ms
        self._verify_proof = proof_verifier or _default_proof_verifier()
        if history is not None and history.entries()[0][0] == 1 and \
                history.entries()[0][1].hash != genesis.validators.hash:
            raise ValueError("the validator-set history starts from another genesis")
        self.history = history if history is not None else ValidatorSetHistory(genesis.validators)
        self._fetches = 0
        self.reuse_ms = reuse_ms
        self._recent: OrderedDict[bytes, _Kept] = OrderedDict()
        self._recent_lock = threading.Lock()

    # --- public reads -------------------------------------------------------------
    def latest_header(self, now_ms: int) -> BlockHeader:
        """The node's latest block header, certified and fresh."""
        obj = self._fetch(lambda: self.fetcher.latest_block())
        header, cert = self._parse_header(obj)
        self._check_fresh(header, now_ms)
        self._verify_header(header, cert)
        return header

    def catch_up(self, *, rounds_max: int = CATCH_UP_ROUNDS_MAX) -> BlockHeader:
        """Follow every validator-set change up to the node's latest certified header, calling
        again past ``valset-catching-up`` (each round follows at most
        :data:`VALSET_CHANGES_FOLLOW_MAX` changes and keeps them): for a one-shot client (a
        command) that must answer now. No freshness check (historical reads need none);
        returns that header."""
        for _ in range(rounds_max - 1):
            try:
                return self._certified_head()
            except LightClientError as exc:
                if exc.reason != "valset-catching-up":
                    raise
        return self._certified_head()

    def _certified_head(self) -> BlockHeader:
        header, cert = self._parse_header(self._fetch(lambda: self.fetcher.latest_block()))
        self._verify_header(header, cert)
        return header

    def get_verified(self, key: bytes, now_ms: int, *, height: int | None = None) -> Verified:
        """Read ``key`` (current, or at ``height``) with every check; absence is ``value=None``."""
        if height is None and self.reuse_ms:
            recent = self._reused(key, now_ms)
            if recent is not None:
                return recent
        answer = self._answer(self._fetch(lambda: self.fetcher.state(key, height)), key, height)
        if height is None:
            self._check_fresh(answer.header, now_ms)
        self._verify_header(answer.header, answer.certificate)
        self._check_proof(answer)
        verified = Verified(key, answer.value, answer.header.height, answer.header.hash, answer.header.time_ms)
        if height is None and self.reuse_ms:
            with self._recent_lock:
                self._recent[key] = _Kept(now_ms, verified)
                self._recent.move_to_end(key)
                while len(self._recent) > READ_REUSE_KEYS_MAX:
                    self._recent.popitem(last=False)
        return verified

    def _reused(self, key: bytes, now_ms: int) -> Verified | None:
        """A current read of ``key`` made at most ``reuse_ms`` before ``now_ms`` and still fresh."""
        with self._recent_lock:
            entry = self._recent.get(key)
        if entry is None:
            return None
        verified = entry.verified
        if not 0 <= now_ms - entry.read_at <= self.reuse_ms or now_ms - verified.time_ms > self.freshness_ms:
            return None
        return verified

    def _decoded(self, verified: Verified) -> Value:
        """``verified.decoded()``, decoded once per kept read when reads are reused."""
        if not self.reuse_ms:
            return verified.decoded()
        with self._recent_lock:
            entry = self._recent.get(verified.key)
        if entry is None or entry.verified is not verified:
            return verified.decoded()
        if entry.value is None:
            entry.value = (verified.decoded(),)
        return entry.value[0]

    def get_value(self, key: bytes, now_ms: int, *, height: int | None = None) -> Value:
        """The decoded value at ``key`` (a record of its own at the top level: the caller may
        change it); :class:`NotFoundError` for a proven absence."""
        return self.record(self.get_verified(key, now_ms, height=height), NotFoundError.reason)

    def resolve_did(self, did: str, now_ms: int, *, version: int | None = None,
                    height: int | None = None) -> dict[str, Any]:
        """DID resolution result (document + metadata) of ``did``, optionally at a version/height."""
        if not didmod.is_did(did):
            raise LightClientError(f"{did!r} is not a did:imi", reason="bad-did")
        key = statekeys.did_key(did) if version is None else statekeys.did_version_key(did, version)
        return self.did_resolution(self.get_verified(key, now_ms, height=height), did)

    def did_resolution(self, verified: Verified, did: str) -> dict[str, Any]:
        """The DID resolution result of ``did`` from a verified read of its record (as
        :meth:`resolve_did` returns it; a new object on every call)."""
        if verified.value is None:
            raise NotFoundError(f"{did} is not on the ledger", reason="did-not-found")
        record = self._decoded(verified)
        if not isinstance(record, dict) or record.get("did") != did:
            raise LightClientError("certified DID record is for another DID", reason="malformed-value")
        out = didmod.resolution(record)
        out["didResolutionMetadata"] = {"height": verified.height, "block_hash": verified.block_hash.hex(),
                                        "block_time_ms": verified.time_ms}
        return out

    def record(self, verified: Verified, missing: str) -> dict[str, Any]:
        """The record in a verified read (a copy at the top level: the caller may change it);
        :class:`NotFoundError` with reason ``missing`` for a proven absence."""
        if verified.value is None:
            raise NotFoundError(f"{verified.key.decode('utf-8', 'replace')} is provably absent", reason=missing)
        value = self._decoded(verified)
        if not isinstance(value, dict):
            raise LightClientError("certified value has an unexpected shape", reason="malformed-value")
        return dict(value)

    def issuer(self, did: str, now_ms: int) -> dict[str, Any]:
        """The accreditation record of ``did`` (status, name, vcts)."""
        return self._record(statekeys.issuer_key(did), now_ms, "issuer-not-found")

    def service(self, did: str, now_ms: int) -> dict[str, Any]:
        """The registration of service ``did`` (status, name, purpose, the claims it may ask)."""
        return self._record(statekeys.service_key(did), now_ms, "service-not-found")

    def credential_type(self, vct: str, now_ms: int) -> dict[str, Any]:
        """The published definition of ``vct``."""
        return self._record(statekeys.vct_key(vct), now_ms, "vct-not-found")

    def status_list(self, list_id: str, now_ms: int) -> dict[str, Any]:
        """A status list record, with its draft ``status_list`` form (``{bits, lst}``) added."""
        record = self._status_record(list_id, now_ms)
        record["status_list"] = sl.to_json(record["lst"], record["bits"])
        return record

    def _status_record(self, list_id: str, now_ms: int) -> dict[str, Any]:
        record = self._record(statekeys.status_list_key(list_id), now_ms, "list-not-found")
        lst, bits = record.get("lst"), record.get("bits")
        if not isinstance(lst, bytes) or not isinstance(bits, int) or bits not in (1, 2):
            raise LightClientError("certified status list has an unexpected shape", reason="malformed-value")
        return record

    def status(self, list_id: str, index: int, now_ms: int) -> int:
        """Status (0 valid, 1 invalid, 2 suspended) of entry ``index`` of a list (the list's
        compressed draft form is not built: a verifier asks this per presentation)."""
        record = self._status_record(list_id, now_ms)
        if not 0 <= index < record.get("size", 0):
            raise LightClientError(f"index {index} outside the list", reason="index-out-of-range")
        try:
            return sl.get_status(record["lst"], record["bits"], index)
        except StatusListError as exc:
            raise LightClientError(str(exc), reason=exc.reason) from exc

    def anchor(self, digest: bytes, now_ms: int) -> dict[str, Any]:
        """The anchor record (issuer, time) of a credential anchor digest."""
        return self._record(statekeys.anchor_key(digest.hex()), now_ms, "anchor-not-found")

    def validator_set(self, now_ms: int, *, height: int | None = None) -> ValidatorSet:
        """The certified validator set recorded in state (``valset/current``: it certifies
        the block after the answer's height)."""
        verified = self.get_verified(statekeys.VALSET_CURRENT, now_ms, height=height)
        try:
            return ValidatorSet.from_value(decode(verified.value or b""))
        except LedgerError as exc:
            raise LightClientError(f"certified validator set is malformed: {exc}",
                                   reason="malformed-value") from exc

    # --- internals ---------------------------------------------------------------------
    def _record(self, key: bytes, now_ms: int, missing: str) -> dict[str, Any]:
        return self.record(self.get_verified(key, now_ms), missing)

    def _fetch(self, call: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
        self._fetches += 1
        try:
            obj = call()
        except LightClientError:
            raise
        except Exception as exc:  # a transport failure is an unverified answer, never a crash
            raise LightClientError(f"node did not answer: {exc}", reason="node-unavailable") from exc
        if not isinstance(obj, Mapping):
            raise LightClientError("node answer is not an object", reason="malformed-response")
        return obj

    def _parse_header(self, obj: Mapping[str, Any]) -> tuple[BlockHeader, CommitCertificate]:
        try:
            header = BlockHeader.from_json(obj["header"])
            cert = CommitCertificate.from_json(obj["certificate"])
        except (KeyError, TypeError, ValueError, LedgerError) as exc:
            raise LightClientError(f"malformed header or certificate: {exc}", reason="malformed-response") from exc
        if "hash" in obj and obj["hash"] != header.hash.hex():
            raise LightClientError("block hash does not match its header", reason="malformed-response")
        return header, cert

    def _answer(self, obj: Mapping[str, Any], key: bytes, height: int | None) -> _Answer:
        header, cert = self._parse_header(obj)
        if obj.get("key") != key.decode("utf-8"):
            raise LightClientError("answer is for another key", reason="wrong-key")
        if height is not None and header.height != height:
            raise LightClientError(f"answer is at height {header.height}, asked {height}", reason="wrong-height")
        raw = obj.get("value")
        try:
            value = None if raw is None else _b64url_decode(raw)
            proof = _parse_proof(obj.get("proof"))
        except (ValueError, TypeError, LedgerError) as exc:
            raise LightClientError(f"malformed value or proof: {exc}", reason="malformed-response") from exc
        return _Answer(header, cert, key, value, proof)

    def _check_proof(self, answer: _Answer) -> None:
        try:
            self._verify_proof(answer.header.state_root, answer.key, answer.value, answer.proof)
        except LedgerError as exc:
            raise LightClientError(f"state proof fails: {exc}", reason="bad-state-proof") from exc

    def _check_fresh(self, header: BlockHeader, now_ms: int) -> None:
        if header.time_ms > now_ms + CLOCK_SKEW_MS:
            raise LightClientError("header time is in the future", reason="header-from-future")
        if now_ms - header.time_ms > self.freshness_ms:
            raise LightClientError(f"header is {now_ms - header.time_ms} ms old, limit {self.freshness_ms}",
                                   reason="stale-header")

    def _verify_header(self, header: BlockHeader, cert: CommitCertificate) -> None:
        if header.chain_id != self.genesis.chain_id or cert.chain_id != self.genesis.chain_id:
            raise LightClientError(f"header is for chain {header.chain_id!r}", reason="wrong-chain")
        validators = self._set_for(header)
        try:
            cert.verify(header, validators)
        except LedgerError as exc:
            raise LightClientError(f"certificate does not verify: {exc}", reason=exc.reason) from exc

    def _set_for(self, header: BlockHeader) -> ValidatorSet:
        """The validator set that must certify ``header``, following changes if needed."""
        entries = self.history.entries()
        i = bisect.bisect_right([h for h, _ in entries], header.height) - 1
        if i < 0:
            if entries[0][0] > 1:
                raise LightClientError(f"validator sets before height {entries[0][0]} are no longer kept",
                                       reason="valset-history-pruned")
            raise LightClientError("header height before the genesis", reason="bad-height")
        start, current = entries[i]
        if current.hash == header.validator_set_hash:
            return current
        if i != len(entries) - 1:
            raise LightClientError("header is not signed by the set in force at its height",
                                   reason="wrong-validator-set")
        with self.history.follow_lock:
            self._follow(header.height, header.validator_set_hash)
        start, current = self.history.latest()
        if current.hash != header.validator_set_hash or start > header.height:
            raise LightClientError("no certified path to the header's validator set",
                                   reason="wrong-validator-set")
        return current

    def _follow(self, target: int, target_hash: bytes) -> None:
        """Learn up to :data:`VALSET_CHANGES_FOLLOW_MAX` certified validator-set changes
        between the latest known set and ``target``; each one is kept in the history at
        once, so a call that stops short (``valset-catching-up``) loses nothing."""
        budget = self._fetches + LIGHT_CLIENT_FETCHES_MAX
        for _ in range(VALSET_CHANGES_FOLLOW_MAX):
            lo, current = self.history.latest()
            if current.hash == target_hash or lo >= target:
                return
            start, new = self._next_change(lo, current, target, budget)
            self.history.append(start, new)
        lo, current = self.history.latest()
        if current.hash != target_hash and lo < target:
            raise LightClientError(f"followed {VALSET_CHANGES_FOLLOW_MAX} validator-set changes up to "
                                   f"height {lo}; more follow before {target}: ask again to continue",
                                   reason="valset-catching-up")

    def _next_change(self, lo: int, current: ValidatorSet, target: int, budget: int) -> tuple[int, ValidatorSet]:
        """The first certified change after ``lo`` (where ``current`` is in force), found by
        bisection up to ``target`` (where another set is): ``(first height of the new set, set)``."""
        hi = target  # invariant: set at lo is `current`; the set at hi differs
        last: _Answer | None = None
        while hi - lo > 1:
            if self._fetches > budget:
                raise LightClientError("too many fetches following validator sets",
                                       reason="valset-follow-limit")
            mid = (lo + hi) // 2
            answer = self._valset_answer(mid)
            if answer.header.validator_set_hash == current.hash:
                lo, last = mid, answer
            else:
                hi = mid
        answer = last if last is not None and last.header.height == lo else self._valset_answer(lo)
        if answer.header.validator_set_hash != current.hash:
            raise LightClientError("validator-set history is inconsistent", reason="wrong-validator-set")
        try:
            answer.certificate.verify(answer.header, current)
        except LedgerError as exc:
            raise LightClientError(f"change header not certified: {exc}", reason=exc.reason) from exc
        self._check_proof(answer)
        new = self._decode_set(answer)
        if new.hash != answer.header.next_validator_set_hash:
            raise LightClientError("proven validator set differs from next_validator_set_hash",
                                   reason="wrong-validator-set")
        if new.hash == current.hash:
            raise LightClientError("no validator-set change where the node claims one",
                                   reason="wrong-validator-set")
        return lo + 1, new

    def _valset_answer(self, height: int) -> _Answer:
        key = statekeys.VALSET_CURRENT
        answer = self._answer(self._fetch(lambda: self.fetcher.state(key, height)), key, height)
        if answer.header.chain_id != self.genesis.chain_id:
            raise LightClientError("header is for another chain", reason="wrong-chain")
        return answer

    def _decode_set(self, answer: _Answer) -> ValidatorSet:
        try:
            return ValidatorSet.from_value(decode(answer.value or b""))
        except LedgerError as exc:
            raise LightClientError(f"certified validator set is malformed: {exc}",
                                   reason="malformed-value") from exc


def _b64url_decode(text: object) -> bytes:
    if not isinstance(text, str) or "=" in text:
        raise ValueError("value must be unpadded base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise ValueError("value is not canonical base64url")
    return raw


class HttpFetcher:
    """:class:`Fetcher` over the node's REST API (httpx). Thin: no verification here."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0, client: Any = None) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout_s)

    def _get(self, path: str, height: int | None) -> Mapping[str, Any]:
        params = {} if height is None else {"height": str(height)}
        response = self._client.get(self.base_url + path, params=params)
        if response.status_code != 200:
            reason = "node-error"
            try:
                reason = str(response.json().get("reason", reason))
            except ValueError:  # a non-JSON error body keeps the generic reason
                reason = "node-error"
            raise LightClientError(f"node answered HTTP {response.status_code} for {path}", reason=reason)
        result: Mapping[str, Any] = response.json()
        return result

    def latest_block(self) -> Mapping[str, Any]:
        return self._get("/v1/blocks/latest", None)

    def state(self, key: bytes, height: int | None) -> Mapping[str, Any]:
        return self._get("/v1/state/" + urllib.parse.quote(key.decode("utf-8"), safe=""), height)

    def validators(self, height: int | None) -> Mapping[str, Any]:
        return self._get("/v1/validators", height)

    def close(self) -> None:
        self._client.close()


__all__ = ["Fetcher", "HttpFetcher", "LightClient", "ValidatorSetHistory", "Verified"]
