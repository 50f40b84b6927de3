"""The verifier's question, independent of credential format, and the answer check.

A :class:`PresentationRequest` says which credential types are accepted
(``vct``), which claims must be disclosed (paths like ``address.locality``),
which predicates must hold (paths whose disclosed value must be ``true``, like
``age_equal_or_over.18``), which issuers are trusted, the ``nonce`` and
``aud`` the holder must bind, and the maximum credential age in seconds.

``paths_to_disclose`` is what a wallet should reveal — no more. ``check_answer``
raises :class:`identity.errors.RequestError` (reasons ``vct-not-accepted``,
``issuer-not-trusted``, ``claim-not-disclosed``, ``predicate-not-satisfied``,
``credential-too-old``) when verified claims do not answer the question.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from identity.errors import PresentationError, RequestError
from identity.presentation import split_path

_MISSING = object()


@dataclass(frozen=True, slots=True)
class PresentationRequest:
    """What a verifier asks. Empty ``vct``/``trusted_issuers`` mean "any"; ``max_age_s``
    is seconds since the credential's ``iat`` (None: no limit). Raises ValueError
    on an empty nonce/aud, a malformed claim path or a negative max age."""

    nonce: str
    aud: str
    vct: frozenset[str] = frozenset()
    claims: tuple[str, ...] = ()
    predicates: tuple[str, ...] = ()
    trusted_issuers: frozenset[str] = frozenset()
    max_age_s: int | None = None
    require_key_binding: bool = True
    # Derived once: the paths split into segments, as check_answer walks them per answer.
    claim_segments: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)
    predicate_segments: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            claim_segments = tuple(split_path(path) for path in self.claims)
            predicate_segments = tuple(split_path(path) for path in self.predicates)
        except PresentationError as exc:
            raise ValueError(str(exc)) from exc
        object.__setattr__(self, "claim_segments", claim_segments)
        object.__setattr__(self, "predicate_segments", predicate_segments)
        if not self.nonce or not self.aud:
            raise ValueError("a request needs a non-empty nonce and aud")
        if self.max_age_s is not None and self.max_age_s < 0:
            raise ValueError("max_age_s must be non-negative")

    def paths_to_disclose(self) -> tuple[str, ...]:
        """Claims and predicates, in order, without repeats: the minimum disclosure."""
        return tuple(dict.fromkeys((*self.claims, *self.predicates)))

    def to_json(self) -> dict[str, Any]:
        return {
            "nonce": self.nonce,
            "aud": self.aud,
            "vct": sorted(self.vct),
            "claims": list(self.claims),
            "predicates": list(self.predicates),
            "trusted_issuers": sorted(self.trusted_issuers),
            "max_age_s": self.max_age_s,
            "require_key_binding": self.require_key_binding,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PresentationRequest:
        """Build from the JSON form of :meth:`to_json`; raises ValueError on a bad shape."""
        def strings(name: str) -> tuple[str, ...]:
            value = data.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name} must be a list of strings")
            return tuple(value)

        max_age = data.get("max_age_s")
        if max_age is not None and (not isinstance(max_age, int) or isinstance(max_age, bool)):
            raise ValueError("max_age_s must be an integer")
        nonce, aud = data.get("nonce"), data.get("aud")
        if not isinstance(nonce, str) or not isinstance(aud, str):
            raise ValueError("nonce and aud must be strings")  # noqa: TRY004 - one type for bad JSON
        binding = data.get("require_key_binding", True)
        if not isinstance(binding, bool):
            raise ValueError("require_key_binding must be a boolean")  # noqa: TRY004 - one type for bad JSON
        return cls(
            nonce=nonce,
            aud=aud,
            vct=frozenset(strings("vct")),
            claims=strings("claims"),
            predicates=strings("predicates"),
            trusted_issuers=frozenset(strings("trusted_issuers")),
            max_age_s=max_age,
            require_key_binding=binding,
        )


def lookup(claims: Any, path: str) -> Any:
    """Value at ``path`` in disclosed claims, or a private sentinel when absent."""
    return _lookup(claims, split_path(path))


def _lookup(claims: Any, segments: tuple[str, ...]) -> Any:
    node = claims
    for segment in segments:
        if isinstance(node, dict) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return _MISSING
    return node


def check_answer(
    request: PresentationRequest, claims: Mapping[str, Any], *, now: int
) -> None:
    """Raise RequestError unless verified, disclosed ``claims`` answer ``request`` at ``now``."""
    if request.vct and claims.get("vct") not in request.vct:
        raise RequestError("credential type is not accepted", reason="vct-not-accepted")
    if request.trusted_issuers and claims.get("iss") not in request.trusted_issuers:
        raise RequestError("issuer is not trusted by this verifier", reason="issuer-not-trusted")
    for path, segments in zip(request.claims, request.claim_segments, strict=True):
        if _lookup(claims, segments) is _MISSING:
            raise RequestError(f"claim {path!r} was not disclosed", reason="claim-not-disclosed")
    for path, segments in zip(request.predicates, request.predicate_segments, strict=True):
        value = _lookup(claims, segments)
        if value is _MISSING:
            raise RequestError(f"predicate {path!r} was not disclosed", reason="claim-not-disclosed")
        if value is not True:
            raise RequestError(f"predicate {path!r} is not satisfied", reason="predicate-not-satisfied")
    if request.max_age_s is not None:
        iat = claims.get("iat")
        if not isinstance(iat, int) or now - iat > request.max_age_s:
            raise RequestError("credential is older than allowed", reason="credential-too-old")


__all__ = ["PresentationRequest", "check_answer", "lookup"]
