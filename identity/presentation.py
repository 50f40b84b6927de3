"""Holder side: choose the fewest disclosures that answer a request, add a KB-JWT.

A claim is named by a *path*: dot-separated segments, a member name in an
object and a decimal index in an array (``address.locality``,
``age_equal_or_over.18``, ``nationalities.0``). Disclosing a path discloses
every parent disclosure on the way (so the verifier can reach it) and the
whole subtree below it; nothing else is revealed.

The Key Binding JWT (RFC 9901 §4.3) has header ``typ: kb+jwt`` and payload
``iat``, ``aud``, ``nonce`` and ``sd_hash`` = base64url(SHA-256(ASCII of the
presentation up to and including its last ``~``)).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from identity import jose
from identity.constants import (
    ARRAY_DIGEST_KEY,
    PRESENTATION_CHARS_MAX,
    SD_KEY,
    SEPARATOR,
    TYP_KB_JWT,
)
from identity.errors import PresentationError, VerificationError
from identity.sdjwt import Disclosure
from ledger.keys import SigningKey


def sd_hash(presentation_without_kb: str) -> str:
    """``sd_hash`` of ``<JWT>~<d1>~...~`` (must end with ``~``)."""
    return jose.b64url_sha256(presentation_without_kb.encode("ascii"))


def split_path(path: str) -> tuple[str, ...]:
    """``"a.b.0"`` → ``("a", "b", "0")``; raises PresentationError on an empty segment."""
    segments = tuple(path.split("."))
    if not path or any(not s for s in segments):
        raise PresentationError(f"invalid claim path {path!r}", reason="bad-claim-path")
    return segments


@dataclass(frozen=True, slots=True)
class HeldCredential:
    """An issued SD-JWT as the holder keeps it (parsed, issuer signature not checked here)."""

    jws: str
    payload: dict[str, Any]
    disclosures: tuple[Disclosure, ...]

    @classmethod
    def parse(cls, compact: str) -> HeldCredential:
        """Parse ``<JWT>~<d>~...~``; raises PresentationError on a malformed credential."""
        if not isinstance(compact, str) or len(compact) > PRESENTATION_CHARS_MAX:
            raise PresentationError("credential is not a string within limits", reason="bad-credential")
        parts = compact.strip().split(SEPARATOR)
        if len(parts) < 2 or parts[-1] != "":
            raise PresentationError("credential must end with '~' and carry no KB-JWT", reason="bad-credential")
        try:
            jws = jose.parse(parts[0])
            disclosures = tuple(Disclosure.decode(d) for d in parts[1:-1])
        except VerificationError as exc:
            raise PresentationError(f"credential is malformed: {exc}", reason="bad-credential") from exc
        return cls(parts[0], jws.payload, disclosures)

    def _by_digest(self) -> dict[str, Disclosure]:
        return {d.digest: d for d in self.disclosures}

    def select(self, paths: Iterable[str]) -> tuple[Disclosure, ...]:
        """The disclosures needed to reveal ``paths``, in issuance order, without repeats."""
        by_digest = self._by_digest()
        chosen: set[str] = set()
        try:
            for path in paths:
                _select_path(self.payload, split_path(path), by_digest, chosen, path)
        except RecursionError as exc:  # only a hostile credential chains disclosures this deep
            raise PresentationError("credential nests too deeply", reason="bad-credential") from exc
        return tuple(d for d in self.disclosures if d.digest in chosen)

    def claims(self) -> dict[str, Any]:
        """All claims with every disclosure applied (for showing the holder what it holds)."""
        try:
            claims: dict[str, Any] = _reveal(self.payload, self._by_digest(), set(), top=True)
        except RecursionError as exc:
            raise PresentationError("credential nests too deeply", reason="bad-credential") from exc
        return claims


def _digests(node: dict[str, Any]) -> list[str]:
    """The ``_sd`` digests of an object, ignoring anything malformed (the verifier judges)."""
    digests = node.get(SD_KEY, ())
    return [d for d in digests if isinstance(d, str)] if isinstance(digests, list) else []


def _array_digest(item: Any) -> str | None:
    if isinstance(item, dict) and len(item) == 1 and isinstance(item.get(ARRAY_DIGEST_KEY), str):
        return str(item[ARRAY_DIGEST_KEY])
    return None


def _child(node: Any, segment: str, by_digest: dict[str, Disclosure], chosen: set[str], path: str) -> Any:
    if isinstance(node, dict):
        if segment in node and segment not in (SD_KEY, ARRAY_DIGEST_KEY):
            return node[segment]
        for dig in _digests(node):
            disclosure = by_digest.get(dig)
            if disclosure is not None and disclosure.name == segment:
                chosen.add(dig)
                return disclosure.value
    elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
        item = node[int(segment)]
        element_digest = _array_digest(item)
        if element_digest is not None:
            disclosure = by_digest.get(element_digest)
            if disclosure is None:
                raise PresentationError(f"claim {path!r} is not held", reason="claim-not-held")
            chosen.add(disclosure.digest)
            return disclosure.value
        return item
    raise PresentationError(f"claim {path!r} is not held", reason="claim-not-held")


def _select_path(
    node: Any, segments: tuple[str, ...], by_digest: dict[str, Disclosure], chosen: set[str], path: str
) -> None:
    for segment in segments:
        node = _child(node, segment, by_digest, chosen, path)
    _reveal(node, by_digest, chosen, top=False)


def _reveal(node: Any, by_digest: dict[str, Disclosure], chosen: set[str], *, top: bool) -> Any:
    """Apply every available disclosure under ``node``, recording the digests used."""
    if isinstance(node, list):
        out_list = []
        for item in node:
            dig = _array_digest(item)
            if dig is not None:
                disclosure = by_digest.get(dig)
                if disclosure is not None:
                    chosen.add(disclosure.digest)
                    out_list.append(_reveal(disclosure.value, by_digest, chosen, top=False))
                continue
            out_list.append(_reveal(item, by_digest, chosen, top=False))
        return out_list
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for name, value in node.items():
            if name == SD_KEY or (top and name == "_sd_alg"):
                continue
            out[name] = _reveal(value, by_digest, chosen, top=False)
        for dig in _digests(node):
            disclosure = by_digest.get(dig)
            if disclosure is not None and disclosure.name is not None:
                chosen.add(dig)
                out[disclosure.name] = _reveal(disclosure.value, by_digest, chosen, top=False)
        return out
    return node


def key_binding_jwt(
    presentation_without_kb: str, *, holder_key: SigningKey, nonce: str, aud: str, iat: int
) -> str:
    """Sign a KB-JWT over ``presentation_without_kb`` (ends with ``~``); ``iat`` in seconds."""
    payload = {"iat": iat, "aud": aud, "nonce": nonce, "sd_hash": sd_hash(presentation_without_kb)}
    return jose.sign({"typ": TYP_KB_JWT}, payload, holder_key)


def present(
    credential: str,
    paths: Iterable[str],
    *,
    holder_key: SigningKey | None,
    nonce: str,
    aud: str,
    iat: int,
) -> str:
    """Compact SD-JWT+KB revealing only ``paths``; without ``holder_key``, no KB-JWT (ends in ``~``).

    Raises :class:`PresentationError` if the credential is malformed or a path is not held.
    """
    held = HeldCredential.parse(credential)
    chosen = held.select(paths)
    without_kb = SEPARATOR.join([held.jws, *(d.encoded for d in chosen)]) + SEPARATOR
    if holder_key is None:
        return without_kb
    return without_kb + key_binding_jwt(without_kb, holder_key=holder_key, nonce=nonce, aud=aud, iat=iat)


__all__ = ["HeldCredential", "key_binding_jwt", "present", "sd_hash", "split_path"]
