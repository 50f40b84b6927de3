"""The holder's wallet: keys and credentials encrypted at rest, minimal answers, history.

On disk a wallet is one JSON envelope (mode 0600, replaced atomically)::

    {"format": "imi-wallet", "version": 1,
     "kdf": {"alg": "argon2id", "salt": b64url, "opslimit": int, "memlimit": int},
     "box": b64url(XSalsa20-Poly1305 SecretBox of the contents, nonce included)}

The box key is Argon2id(password, salt) with the limits named in the file
(bounded by identity.constants so a crafted file cannot exhaust memory). The
contents are JSON: private JWKs by key id, credentials by id, and the
disclosure history — what was shown, to which ``aud``, with which nonce, when.

``answer`` picks a held credential that can satisfy a request and discloses
exactly ``request.paths_to_disclose()``; every answer is recorded.

*One-time credentials.* An issuance of N credentials (a batch: same issuer, type and
claims, each bound to its own holder key and signed separately) is remembered as one
issuance record. The wallet counts, per credential, how often it was presented
(persisted), and answers with a credential never presented before, so two services cannot
link two answers by holder key or issuer signature. When every credential that could
answer has been presented, the wallet's setting :data:`WHEN_USED_UP` decides: ``reuse``
(the default) answers with the least-used one and says so (:meth:`Wallet.choose` returns
``reused=True``, shown to the person before consent); ``refuse`` refuses
(``WalletError`` ``batch-used-up``) until a new batch is received.

A *recovery kit* (:func:`write_recovery_kit`, :func:`read_recovery_kit`) is a file
of the same format, under its own password, holding one key only: a DID's
pre-rotated next key, kept away from the phone. Whoever holds it and its password
can rotate (or deactivate) the DID, so it is never written in clear.
Times are integer seconds since the epoch, passed in by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import nacl.exceptions
import nacl.secret
import nacl.utils
from nacl.pwhash import argon2id

from identity.constants import (
    KDF_MEMLIMIT_DEFAULT,
    KDF_MEMLIMIT_MAX,
    KDF_MEMLIMIT_MIN,
    KDF_OPSLIMIT_DEFAULT,
    KDF_OPSLIMIT_MAX,
    KDF_OPSLIMIT_MIN,
    WALLET_BYTES_MAX,
    WALLET_CREDENTIALS_MAX,
    WALLET_FORMAT,
    WALLET_HISTORY_MAX,
    WALLET_KEYS_MAX,
    WALLET_VERSION,
)
from identity.errors import IdentityError, PresentationError, WalletError
from identity.presentation import HeldCredential, present
from identity.request import PresentationRequest
from ledger.errors import KeyError_
from ledger.files import write_atomic
from ledger.hashing import sha256
from ledger.keys import PublicKey, SigningKey, b64url_decode, b64url_encode


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost: ``opslimit`` passes, ``memlimit`` bytes (libsodium units)."""

    opslimit: int = KDF_OPSLIMIT_DEFAULT
    memlimit: int = KDF_MEMLIMIT_DEFAULT

    def __post_init__(self) -> None:
        if not (KDF_OPSLIMIT_MIN <= self.opslimit <= KDF_OPSLIMIT_MAX) or not (
            KDF_MEMLIMIT_MIN <= self.memlimit <= KDF_MEMLIMIT_MAX
        ):
            raise WalletError("KDF limits out of bounds", reason="bad-wallet")

    @classmethod
    def fastest(cls) -> KdfParams:
        """The cheapest limits libsodium allows — for tests only, never for real wallets."""
        return cls(KDF_OPSLIMIT_MIN, KDF_MEMLIMIT_MIN)


REUSE: Final = "reuse"
REFUSE: Final = "refuse"
WHEN_USED_UP: Final = (REUSE, REFUSE)  # what to do when every one-time credential was presented


@dataclass(frozen=True, slots=True)
class CredentialSummary:
    id: str
    iss: str
    vct: str
    iat: int | None
    exp: int | None
    holder_key: str
    claims: tuple[str, ...]  # top-level claim names the holder can disclose
    uses: int = 0  # times presented
    batch: tuple[str, ...] = ()  # ids of the credentials of its issuance still held (itself included)
    batch_unused: int = 0  # how many of ``batch`` were never presented

    def usage(self) -> str:
        """E.g. "3 of 10 unused" (of its batch)."""
        return f"{self.batch_unused} of {len(self.batch)} unused"


@dataclass(frozen=True, slots=True)
class Choice:
    """The credential an answer will use; ``reused`` when it was presented before."""

    credential: str
    reused: bool


@dataclass(frozen=True, slots=True)
class DisclosureRecord:
    """One answer given: when (seconds), to whom, which credential, which paths."""

    at: int
    aud: str
    nonce: str
    credential: str
    vct: str
    iss: str
    disclosed: tuple[str, ...]
    verifier: str | None = None  # the service's registered name, when the ledger named it
    refused: str | None = None  # why nothing was disclosed (a refused or declined request)
    verifier_names: Mapping[str, str] | None = None  # that name in each language registered

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "aud": self.aud, "nonce": self.nonce, "credential": self.credential,
                "vct": self.vct, "iss": self.iss, "disclosed": list(self.disclosed),
                "verifier": self.verifier, "refused": self.refused,
                "verifier_names": None if self.verifier_names is None else dict(self.verifier_names)}

    def verifier_name(self, lang: str) -> str:
        """Whom it went to, for a page in ``lang``: the registered name in that language, else
        the name shown at consent, else the service's client id."""
        names = self.verifier_names or {}
        return names.get(lang) or self.verifier or self.aud


def _box_key(password: str, salt: bytes, kdf: KdfParams) -> bytes:
    return bytes(argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, password.encode("utf-8"), salt,
        opslimit=kdf.opslimit, memlimit=kdf.memlimit,
    ))


def _credential_id(compact: str) -> str:
    """Stable id: the first 20 hex digits (80 bits) of SHA-256(issuer-signed JWT). Hex, so an
    id never starts with '-' and passes on a command line as an argument, not an option."""
    return sha256(compact.split("~", 1)[0].encode("ascii")).hex()[:20]


class Wallet:
    """An open wallet. Changes stay in memory until :meth:`save`."""

    __slots__ = ("_credentials", "_dids", "_history", "_issuances", "_kdf", "_keys", "_password", "_settings",
                 "path")

    def __init__(self, path: Path, password: str, kdf: KdfParams, contents: dict[str, Any]) -> None:
        self.path = path
        self._password = password
        self._kdf = kdf
        self._keys: dict[str, dict[str, str]] = contents["keys"]
        self._credentials: dict[str, dict[str, Any]] = contents["credentials"]
        self._history: list[dict[str, Any]] = contents["history"]
        # did -> {"key": current key id}; the DID's next key is NOT kept here (recovery kit)
        self._dids: dict[str, dict[str, str]] = contents.get("dids", {})
        # credentials received: when, from whom, which ids, which holder the issuer enrolled
        self._issuances: list[dict[str, Any]] = contents.get("issuances", [])
        self._settings: dict[str, str] = contents.get("settings", {})

    # --- lifecycle ---------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, password: str, *, kdf: KdfParams = KdfParams()) -> Wallet:
        """A new, empty wallet saved at ``path``; refuses to replace an existing file."""
        if path.exists():
            raise WalletError(f"{path} already exists", reason="wallet-exists")
        if not password:
            raise WalletError("the password must not be empty", reason="bad-password")
        wallet = cls(path, password, kdf, {"keys": {}, "credentials": {}, "history": []})
        wallet.save()
        return wallet

    @classmethod
    def open(cls, path: Path, password: str) -> Wallet:
        """Decrypt the wallet at ``path``; WalletError(wrong-password / bad-wallet) otherwise."""
        try:
            with open(path, "rb") as handle:
                data = handle.read(WALLET_BYTES_MAX + 1)
        except OSError as exc:
            raise WalletError(f"cannot read wallet: {exc.strerror or exc}", reason="no-wallet") from exc
        if len(data) > WALLET_BYTES_MAX:
            raise WalletError("wallet file is too large", reason="bad-wallet")
        try:
            envelope = json.loads(data.decode("utf-8"))
            if envelope.get("format") != WALLET_FORMAT or envelope.get("version") != WALLET_VERSION:
                raise WalletError("not an imi wallet of a known version", reason="bad-wallet")
            kdf_json = envelope["kdf"]
            if kdf_json.get("alg") != "argon2id":
                raise WalletError("unknown KDF", reason="bad-wallet")
            kdf = KdfParams(int(kdf_json["opslimit"]), int(kdf_json["memlimit"]))
            salt = b64url_decode(kdf_json["salt"])
            box = b64url_decode(envelope["box"])
            if len(salt) != argon2id.SALTBYTES:
                raise WalletError("bad KDF salt", reason="bad-wallet")
        except WalletError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, KeyError_, RecursionError) as exc:
            raise WalletError("wallet file is malformed", reason="bad-wallet") from exc
        try:
            plain = nacl.secret.SecretBox(_box_key(password, salt, kdf)).decrypt(box)
        except (nacl.exceptions.CryptoError, ValueError) as exc:
            raise WalletError("wrong password (or damaged wallet)", reason="wrong-password") from exc
        contents = json.loads(plain.decode("utf-8"))
        return cls(path, password, kdf, contents)

    def reopen(self) -> Wallet:
        """This wallet as last saved (changes in memory since are dropped)."""
        return Wallet.open(self.path, self._password)

    def save(self) -> None:
        """Encrypt with a fresh salt and nonce; write owner-only, atomically and durably
        (:func:`ledger.files.write_atomic`)."""
        salt = nacl.utils.random(argon2id.SALTBYTES)
        contents = {"keys": self._keys, "credentials": self._credentials, "history": self._history,
                    "dids": self._dids, "issuances": self._issuances, "settings": self._settings}
        box = nacl.secret.SecretBox(_box_key(self._password, salt, self._kdf)).encrypt(
            json.dumps(contents, separators=(",", ":")).encode("utf-8")
        )
        envelope = {
            "format": WALLET_FORMAT, "version": WALLET_VERSION,
            "kdf": {"alg": "argon2id", "salt": b64url_encode(salt),
                    "opslimit": self._kdf.opslimit, "memlimit": self._kdf.memlimit},
            "box": b64url_encode(bytes(box)),
        }
        try:
            write_atomic(self.path, json.dumps(envelope))
        except OSError as exc:
            raise WalletError(f"cannot write wallet: {exc.strerror or exc}", reason="io-error") from exc

    # --- keys -------------------------------------------------------------------------------
    def new_key(self, alg: str) -> str:
        """Generate a holder key; return its id (RFC 7638 thumbprint)."""
        if len(self._keys) >= WALLET_KEYS_MAX:
            raise WalletError("too many keys", reason="wallet-full")
        try:
            key = SigningKey.generate(alg)
        except KeyError_ as exc:
            raise WalletError(str(exc), reason="bad-alg") from exc
        self._keys[key.key_id] = key.to_private_jwk()
        return key.key_id

    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def signing_key(self, key_id: str) -> SigningKey:
        """The key ``key_id``; a DID this wallet controls names its current key."""
        key_id = self._dids.get(key_id, {}).get("key", key_id)
        jwk = self._keys.get(key_id)
        if jwk is None:
            raise WalletError(f"no key {key_id!r}", reason="no-such-key")
        return SigningKey.from_private_jwk(jwk)

    def public_key(self, key_id: str) -> PublicKey:
        return self.signing_key(key_id).public_key

    def forget_key(self, key_id: str) -> None:
        """Drop a key no credential and no DID uses (e.g. made for a proof the issuer left unanswered)."""
        in_use = {e["holder_key"] for e in self._credentials.values()} | {d["key"] for d in self._dids.values()}
        if key_id in in_use:
            raise WalletError(f"key {key_id!r} is in use", reason="key-in-use")
        self._keys.pop(key_id, None)

    def import_key(self, key: SigningKey) -> str:
        """Add an existing private key (e.g. a DID's next key from its recovery kit); return its id."""
        if key.key_id not in self._keys and len(self._keys) >= WALLET_KEYS_MAX:
            raise WalletError("too many keys", reason="wallet-full")
        self._keys[key.key_id] = key.to_private_jwk()
        return key.key_id

    # --- DIDs (keys that control a did:imi; credentials bound to the DID follow rotations) -----
    def set_did(self, did: str, key_id: str) -> None:
        """Record that ``key_id`` (held here) is the current controller key of ``did``."""
        if key_id not in self._keys:
            raise WalletError(f"no key {key_id!r}", reason="no-such-key")
        self._dids[did] = {"key": key_id}

    def dids(self) -> dict[str, str]:
        """DID → its current key id."""
        return {did: entry["key"] for did, entry in sorted(self._dids.items())}

    # --- credentials --------------------------------------------------------------------------
    def add_credential(self, compact: str, *, holder_key: str | None = None, now: int) -> str:
        """Store an issued SD-JWT; its holder key is ``holder_key`` or found from ``cnf.jwk``."""
        compact = compact.strip()
        held = HeldCredential.parse(compact)
        if len(self._credentials) >= WALLET_CREDENTIALS_MAX:
            raise WalletError("too many credentials", reason="wallet-full")
        key_id = holder_key if holder_key is not None else self._key_for(held.payload.get("cnf"))
        if key_id not in self._keys and key_id not in self._dids:
            raise WalletError(f"no key {key_id!r} in this wallet", reason="no-such-key")
        cred_id = _credential_id(compact)
        self._credentials[cred_id] = {"compact": compact, "holder_key": key_id, "added_at": now}
        return cred_id

    def _key_for(self, cnf: Any) -> str:
        kid = cnf.get("kid") if isinstance(cnf, dict) else None
        if isinstance(kid, str) and kid.partition("#")[0] in self._dids:
            return kid.partition("#")[0]  # bound to a DID: sign with whatever key is current
        jwk = cnf.get("jwk") if isinstance(cnf, dict) else None
        try:
            key_id = PublicKey.from_jwk(jwk).thumbprint() if isinstance(jwk, dict) else None
        except KeyError_:
            key_id = None
        if key_id is None or key_id not in self._keys:
            raise WalletError("the credential is not bound to a key in this wallet; name one",
                              reason="no-such-key")
        return key_id

    def _held(self, cred_id: str) -> tuple[HeldCredential, dict[str, Any]]:
        entry = self._credentials.get(cred_id)
        if entry is None:
            raise WalletError(f"no credential {cred_id!r}", reason="no-such-credential")
        return HeldCredential.parse(entry["compact"]), entry

    def credentials(self) -> list[CredentialSummary]:
        out = []
        batches = self._batches()
        for cred_id in sorted(self._credentials):
            held, entry = self._held(cred_id)
            p = held.payload
            sd = p.get("_sd")
            top: list[Any] = sd if isinstance(sd, list) else []
            out.append(CredentialSummary(
                cred_id, str(p.get("iss")), str(p.get("vct")),
                p.get("iat") if isinstance(p.get("iat"), int) else None,
                p.get("exp") if isinstance(p.get("exp"), int) else None,
                entry["holder_key"], tuple(sorted(d.name for d in held.disclosures
                                                  if d.name is not None and d.digest in top)),
                self.uses(cred_id), batches[cred_id], sum(1 for c in batches[cred_id] if not self.uses(c)),
            ))
        return out

    # --- one-time use of a batch -----------------------------------------------------------------
    def uses(self, cred_id: str) -> int:
        """How many times credential ``cred_id`` was presented."""
        entry = self._credentials.get(cred_id)
        if entry is None:
            raise WalletError(f"no credential {cred_id!r}", reason="no-such-credential")
        return int(entry.get("uses", 0))

    def _batches(self) -> dict[str, tuple[str, ...]]:
        """Credential id → the ids held of its issuance (a credential added by hand is alone)."""
        out: dict[str, tuple[str, ...]] = {cred_id: (cred_id,) for cred_id in self._credentials}
        for record in self._issuances:
            held = tuple(c for c in record["credentials"] if c in self._credentials)
            for cred_id in held:
                out[cred_id] = held
        return out

    @property
    def when_used_up(self) -> str:
        """``reuse`` or ``refuse``: what answering does once every fitting credential was presented."""
        return self._settings.get("when_used_up", REUSE)

    def set_when_used_up(self, policy: str) -> None:
        if policy not in WHEN_USED_UP:
            raise WalletError(f"when used up: {' or '.join(WHEN_USED_UP)}", reason="bad-setting")
        self._settings["when_used_up"] = policy

    def show(self, cred_id: str) -> dict[str, Any]:
        """Every claim of a credential, all disclosures applied (for the holder's eyes)."""
        return self._held(cred_id)[0].claims()

    def remove(self, cred_id: str) -> None:
        self._held(cred_id)
        del self._credentials[cred_id]

    # --- issuances -----------------------------------------------------------------------------
    def record_issuance(self, *, at: int, iss: str, credential_issuer: str, vct: str, credentials: list[str],
                        holder: str, display: dict[str, str] | None = None) -> None:
        """Remember credentials received from ``iss`` (one batch); ``holder`` (a key id or DID) is
        the one that issuer enrolled, proven first in every later request to it; ``display`` the
        type's names by locale, from the issuer's metadata."""
        self._issuances.append({"at": at, "iss": iss, "credential_issuer": credential_issuer, "vct": vct,
                                "credentials": list(credentials), "holder": holder,
                                "display": dict(display or {})})
        del self._issuances[:-WALLET_HISTORY_MAX]

    def issuances(self) -> list[dict[str, Any]]:
        return [dict(i) for i in self._issuances]

    def display_names(self, lang: str) -> dict[str, str]:
        """vct → its name in ``lang`` as the issuer's metadata gave it (latest issuance wins)."""
        return {r["vct"]: r["display"][lang] for r in self._issuances if lang in r.get("display", {})}

    def holder_for(self, iss: str) -> str | None:
        """The holder (key id or DID) this wallet first proved to issuer ``iss``, if any."""
        for record in self._issuances:
            if record["iss"] == iss and (record["holder"] in self._keys or record["holder"] in self._dids):
                return str(record["holder"])
        return None

    # --- answering ------------------------------------------------------------------------------
    def candidates(self, request: PresentationRequest, *, now: int) -> list[str]:
        """Ids of credentials that can answer ``request`` at ``now``: the least presented first
        (never presented ones before all others), then the newest first."""
        found: list[tuple[int, int, str]] = []
        for cred_id in self._credentials:
            held, _ = self._held(cred_id)
            p = held.payload
            if request.vct and p.get("vct") not in request.vct:
                continue
            if request.trusted_issuers and p.get("iss") not in request.trusted_issuers:
                continue
            exp, iat = p.get("exp"), p.get("iat")
            if isinstance(exp, int) and exp <= now:
                continue
            if request.max_age_s is not None and (not isinstance(iat, int) or now - iat > request.max_age_s):
                continue
            try:
                held.select(request.paths_to_disclose())
            except PresentationError:
                continue
            found.append((-self.uses(cred_id), iat if isinstance(iat, int) else 0, cred_id))
        return [cred_id for _, _, cred_id in sorted(found, reverse=True)]

    def choose(self, request: PresentationRequest, *, now: int, credential: str | None = None) -> Choice:
        """The credential :meth:`answer` would use (see the module doc, one-time credentials).

        Raises WalletError(no-matching-credential) if nothing held can answer, or
        (batch-used-up) if all that can were presented and the setting is ``refuse``.
        """
        choices = self.candidates(request, now=now)
        if credential is not None:
            if credential not in choices:
                raise WalletError("that credential cannot answer this request",
                                  reason="no-matching-credential")
            choices = [credential]
        if not choices:
            raise WalletError("no credential can answer this request", reason="no-matching-credential")
        reused = self.uses(choices[0]) > 0
        if reused and credential is None and self.when_used_up == REFUSE:
            raise WalletError("every one-time credential that could answer was already presented; "
                              "receive a new batch from the issuer", reason="batch-used-up")
        return Choice(choices[0], reused)

    def answer(self, request: PresentationRequest, *, now: int, credential: str | None = None,
               verifier: str | None = None, verifier_names: Mapping[str, str] | None = None) -> str:
        """A presentation disclosing exactly what ``request`` asks, recorded in the history
        (with ``verifier``, the service's registered name, and ``verifier_names``, that name in
        each registered language, when known).

        Uses :meth:`choose`'s credential (raising as it does) and counts the use.
        """
        chosen = self.choose(request, now=now, credential=credential).credential
        held, entry = self._held(chosen)
        paths = request.paths_to_disclose()
        try:
            presentation = present(entry["compact"], paths, holder_key=self.signing_key(entry["holder_key"]),
                                   nonce=request.nonce, aud=request.aud, iat=now)
        except IdentityError as exc:
            raise WalletError(str(exc), reason=exc.reason) from exc
        entry["uses"] = int(entry.get("uses", 0)) + 1
        record = DisclosureRecord(now, request.aud, request.nonce, chosen,
                                  str(held.payload.get("vct")), str(held.payload.get("iss")), paths, verifier,
                                  verifier_names=verifier_names)
        self._history.append(record.to_json())
        del self._history[:-WALLET_HISTORY_MAX]
        return presentation

    def record_refusal(self, at: int, aud: str, verifier: str | None, reason: str, detail: str, *,
                       verifier_names: Mapping[str, str] | None = None) -> None:
        """Remember a request that was refused or declined: nothing was disclosed."""
        record = DisclosureRecord(at, aud, "", "", "", "", (), verifier, f"{reason}: {detail}"[:512],
                                  verifier_names)
        self._history.append(record.to_json())
        del self._history[:-WALLET_HISTORY_MAX]

    def history(self) -> list[DisclosureRecord]:
        return [DisclosureRecord(h["at"], h["aud"], h["nonce"], h["credential"], h["vct"], h["iss"],
                                 tuple(h["disclosed"]), h.get("verifier"), h.get("refused"), h.get("verifier_names"))
                for h in self._history]


def write_recovery_kit(path: Path, password: str, next_key: SigningKey, *, kdf: KdfParams | None = None) -> None:
    """Write ``next_key`` (a DID's pre-rotated key) to a new recovery kit at ``path``,
    encrypted under ``password`` as a wallet is. Never replaces an existing file."""
    if path.exists():
        raise WalletError(f"{path} exists; a recovery kit is never overwritten", reason="file-exists")
    if not password:
        raise WalletError("the recovery kit password must not be empty", reason="bad-password")
    contents: dict[str, Any] = {"keys": {next_key.key_id: next_key.to_private_jwk()}, "credentials": {},
                                "history": []}
    Wallet(path, password, kdf or KdfParams(), contents).save()


def read_recovery_kit(path: Path, password: str) -> SigningKey:
    """The next key held by the recovery kit at ``path``; WalletError (no-wallet,
    bad-wallet, wrong-password, or bad-kit for a wallet that is not a kit) otherwise."""
    kit = Wallet.open(path, password)
    keys = kit.key_ids()
    if len(keys) != 1 or kit.credentials() or kit.dids():
        raise WalletError(f"{path} is a wallet, not a recovery kit (one key, nothing else)", reason="bad-kit")
    return kit.signing_key(keys[0])


__all__ = ["REFUSE", "REUSE", "WHEN_USED_UP", "Choice", "CredentialSummary", "DisclosureRecord", "KdfParams",
           "Wallet", "read_recovery_kit", "write_recovery_kit"]
