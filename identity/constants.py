"""Limits and fixed parameters of credentials (SD-JWT VC), in one place.

Names put the qualifier last (``presentation_chars_max``). Relations between
limits are checked at import (:func:`check_limits`) so an inconsistent edit fails at once.
All times are integer seconds since the Unix epoch (``NumericDate``, RFC 7519).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from ledger.constants import require_limits

# --- formats ---------------------------------------------------------------------
TYP_SD_JWT_VC: Final = "dc+sd-jwt"  # SD-JWT VC header typ
TYP_KB_JWT: Final = "kb+jwt"  # RFC 9901 §4.3
SD_ALG: Final = "sha-256"  # the only _sd_alg we issue and accept
SD_KEY: Final = "_sd"
SD_ALG_KEY: Final = "_sd_alg"
ARRAY_DIGEST_KEY: Final = "..."
SEPARATOR: Final = "~"
ALLOWED_ALGS: Final = frozenset({"EdDSA", "ES256"})  # never none, never HS*

# Claims SD-JWT VC forbids to be selectively disclosable; they stay in the clear.
NEVER_DISCLOSABLE_CLAIMS: Final = frozenset({"iss", "nbf", "exp", "cnf", "vct", "status", "iat"})
# Claim names a disclosure may never carry (RFC 9901 §7.1 step 3.c.ii.C).
RESERVED_CLAIM_NAMES: Final = frozenset({SD_KEY, ARRAY_DIGEST_KEY})

# --- issuance -----------------------------------------------------------------------
SALT_BYTES: Final = 16  # 128 bits, RFC 9901 §9.3
DECOYS_PER_OBJECT_MIN: Final = 1
DECOYS_PER_OBJECT_MAX: Final = 3
AGE_PREDICATE_CLAIM: Final = "age_equal_or_over"
BIRTHDATE_CLAIM: Final = "birthdate"
# Predicate claims an issuer can derive, and the claim each is derived from. The members
# (thresholds) come from the published type definition (identity.credtypes), never from here.
PREDICATE_SOURCES: Final = MappingProxyType({AGE_PREDICATE_CLAIM: BIRTHDATE_CLAIM})
CREDENTIAL_LIFETIME_S_DEFAULT: Final = 365 * 24 * 3600

# --- parsing limits (strict verifier) ------------------------------------------------
PRESENTATION_CHARS_MAX: Final = 64 * 1024  # whole compact SD-JWT(+KB)
JWS_CHARS_MAX: Final = 32 * 1024  # issuer-signed JWT or KB-JWT
DISCLOSURE_CHARS_MAX: Final = 8 * 1024  # one base64url disclosure
DISCLOSURES_MAX: Final = 256
DIGESTS_MAX: Final = 2048  # _sd digests plus array digests in one credential
JSON_DEPTH_MAX: Final = 16  # nesting of JSON values inside a credential
KB_JWT_CHARS_MAX: Final = 4 * 1024

# --- DCQL (OpenID4VP 1.0 §6): bounds on a query a verifier sends ----------------------
DCQL_CREDENTIALS_MAX: Final = 16  # credential queries in one request
DCQL_CREDENTIAL_SETS_MAX: Final = 16  # credential set queries, and options in each
DCQL_CLAIMS_MAX: Final = 64  # claims queries in one credential query
DCQL_CLAIM_SETS_MAX: Final = 16
DCQL_VCT_VALUES_MAX: Final = 8
DCQL_VALUES_MAX: Final = 16
DCQL_PATH_DEPTH_MAX: Final = 8
DCQL_PATH_ELEMENT_CHARS_MAX: Final = 64
DCQL_ID_CHARS_MAX: Final = 64

# --- OpenID4VP 1.0 ------------------------------------------------------------------------
OID4VP_URI_CHARS_MAX: Final = 2048  # an openid4vp:// URI, a request_uri, a response_uri
OID4VP_REQUEST_OBJECT_CHARS_MAX: Final = 32 * 1024
OID4VP_VP_TOKEN_CHARS_MAX: Final = 256 * 1024  # several presentations in one answer
OID4VP_NONCE_CHARS_MAX: Final = 128  # nonce and state
OID4VP_REQUEST_LIFETIME_S_MAX: Final = 600  # a request object's exp - iat

# --- caches of the verifier (each a ledger.lru.BoundedLRU owned by its user) -------------
PREPARED_KEYS_MAX: Final = 1024  # public keys a PreparedKeys keeps prepared (by JWK members)
VERIFIER_CACHE_ENTRIES_MAX: Final = 1024  # each map of a VerifierCache (by exact text)
JOSE_HEADERS_CACHED_MAX: Final = 256  # parsed JOSE headers remembered by their exact text
ISSUER_RESOLUTIONS_KEPT_MAX: Final = 256  # (issuer, kid) resolutions kept with the ledger reads they came from

# --- credential types read from the ledger (identity.credtypes.CredentialTypeCache) ------
CREDENTIAL_TYPES_CACHED_MAX: Final = 256  # type definitions an issuer or verifier keeps
CREDENTIAL_TYPE_CACHE_S: Final = 30  # a cached definition is re-read from the ledger after this

# --- time ----------------------------------------------------------------------------
CLOCK_SKEW_S: Final = 60  # tolerated clock difference for exp / nbf / iat
KB_IAT_WINDOW_S: Final = 300  # a KB-JWT older than this is stale (replay window)
STATUS_LIST_AGE_S_MAX: Final = 3600  # a cached status list older than this is stale

# --- token status list (draft-ietf-oauth-status-list) -----------------------------
STATUS_VALID: Final = 0
STATUS_INVALID: Final = 1
STATUS_SUSPENDED: Final = 2

# --- wallet ------------------------------------------------------------------------------
WALLET_FORMAT: Final = "imi-wallet"
WALLET_VERSION: Final = 1
WALLET_BYTES_MAX: Final = 16 * 1024 * 1024  # encrypted file on disk
WALLET_KEYS_MAX: Final = 1_100  # a holder key per credential (one-time batches) + DID and spare keys
WALLET_CREDENTIALS_MAX: Final = 1_000
WALLET_HISTORY_MAX: Final = 10_000  # oldest records are dropped beyond this
# Argon2id limits (libsodium units: opslimit passes, memlimit bytes). A wallet file
# names its own limits; they must lie in these bounds so a crafted file cannot
# make opening it take unbounded memory or time.
KDF_OPSLIMIT_DEFAULT: Final = 2  # libsodium INTERACTIVE
KDF_MEMLIMIT_DEFAULT: Final = 64 * 1024 * 1024
KDF_OPSLIMIT_MIN: Final = 1
KDF_MEMLIMIT_MIN: Final = 8 * 1024
KDF_OPSLIMIT_MAX: Final = 4  # libsodium SENSITIVE
KDF_MEMLIMIT_MAX: Final = 1024 * 1024 * 1024

# --- OpenID4VCI 1.0 (identity.oid4vci) -----------------------------------------------------
PRE_AUTHORIZED_GRANT: Final = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
OFFER_SCHEME: Final = "openid-credential-offer://"
CREDENTIAL_FORMAT: Final = "dc+sd-jwt"
OFFER_TTL_S: Final = 600  # a pre-authorized code (and its tx_code) lives this long
ACCESS_TOKEN_TTL_S: Final = 300
C_NONCE_TTL_S: Final = 300
TX_CODE_LENGTH: Final = 6  # numeric PIN handed over out of band
TX_CODE_ATTEMPTS_MAX: Final = 5  # wrong PINs before the code is burnt
BATCH_SIZE_MAX: Final = 10  # proofs (holder keys) in one credential request
OFFERS_MAX: Final = 10_000  # live pre-authorized codes of one issuer
OFFERS_PER_SUBJECT_MAX: Final = 4  # live codes per subject (a new one beyond drops the oldest)
ACCESS_TOKENS_MAX: Final = 10_000
USED_NONCES_MAX: Final = 200_000  # consumed c_nonces remembered until they expire
RATE_CLIENTS_MAX: Final = 10_000  # clients tracked by a rate limiter (least recent dropped)
TOKEN_REQUESTS_PER_S: Final = 2  # per client, sustained, at the token endpoint
TOKEN_REQUESTS_BURST: Final = 10
OFFER_URI_CHARS_MAX: Final = 8 * 1024
OFFER_CHARS_MAX: Final = 4 * 1024  # a credential offer's JSON
CODE_BYTES: Final = 24  # pre-authorized codes, access tokens, offer ids
METADATA_CACHE_S: Final = 30  # issuer metadata read from the ledger is reused this long
ISSUER_SERVICE_TYPE: Final = "OpenID4VCICredentialIssuer"  # DID document service naming the endpoint

# --- remote (zero-visit) enrolment (identity.remote_enrolment) ------------------------------
REMOTE_ENROLMENT_CONFIG_BYTES_MAX: Final = 64 * 1024  # the --remote-enrolment JSON file
REMOTE_ENROLMENT_SOURCES_MAX: Final = 16  # accepted (issuer, vct) sources
REMOTE_ENROLMENT_MATCH_FIELDS_MAX: Final = 8  # register fields matched against claims, per vct
REMOTE_ENROLMENT_REQUEST_TTL_S: Final = 300  # a started enrolment (its request object) lives this long
REMOTE_ENROLMENT_ANSWERED_MAX: Final = 100_000  # answered requests remembered until they expire
REMOTE_ENROLMENT_STARTS_PER_S: Final = 1  # per client, sustained, at the public start endpoint
REMOTE_ENROLMENT_STARTS_BURST: Final = 5

# --- relations -----------------------------------------------------------------------
def check_limits() -> None:
    """Raise :class:`~ledger.errors.LimitError` naming every relation between these limits
    that does not hold. Called at import: unlike an ``assert`` it also runs under ``python -O``."""
    require_limits(__name__, (
        ("SALT_BYTES >= 16", SALT_BYTES >= 16),
        ("0 <= DECOYS_PER_OBJECT_MIN <= DECOYS_PER_OBJECT_MAX",
         0 <= DECOYS_PER_OBJECT_MIN <= DECOYS_PER_OBJECT_MAX),
        ("JWS_CHARS_MAX < PRESENTATION_CHARS_MAX", JWS_CHARS_MAX < PRESENTATION_CHARS_MAX),
        ("KB_JWT_CHARS_MAX < PRESENTATION_CHARS_MAX", KB_JWT_CHARS_MAX < PRESENTATION_CHARS_MAX),
        ("DISCLOSURE_CHARS_MAX < PRESENTATION_CHARS_MAX", DISCLOSURE_CHARS_MAX < PRESENTATION_CHARS_MAX),
        ("DISCLOSURES_MAX <= DIGESTS_MAX", DISCLOSURES_MAX <= DIGESTS_MAX),
        ("CLOCK_SKEW_S < KB_IAT_WINDOW_S", CLOCK_SKEW_S < KB_IAT_WINDOW_S),
        ("NEVER_DISCLOSABLE_CLAIMS.isdisjoint(RESERVED_CLAIM_NAMES)",
         NEVER_DISCLOSABLE_CLAIMS.isdisjoint(RESERVED_CLAIM_NAMES)),
        ("ALLOWED_ALGS == {'EdDSA', 'ES256'}", ALLOWED_ALGS == {"EdDSA", "ES256"}),
        ("KDF_OPSLIMIT_MIN <= KDF_OPSLIMIT_DEFAULT <= KDF_OPSLIMIT_MAX",
         KDF_OPSLIMIT_MIN <= KDF_OPSLIMIT_DEFAULT <= KDF_OPSLIMIT_MAX),
        ("KDF_MEMLIMIT_MIN <= KDF_MEMLIMIT_DEFAULT <= KDF_MEMLIMIT_MAX",
         KDF_MEMLIMIT_MIN <= KDF_MEMLIMIT_DEFAULT <= KDF_MEMLIMIT_MAX),
        ("WALLET_CREDENTIALS_MAX * PRESENTATION_CHARS_MAX <= 4 * WALLET_BYTES_MAX",
         WALLET_CREDENTIALS_MAX * PRESENTATION_CHARS_MAX <= 4 * WALLET_BYTES_MAX),
        ("OFFERS_PER_SUBJECT_MAX <= OFFERS_MAX", OFFERS_PER_SUBJECT_MAX <= OFFERS_MAX),
        ("ACCESS_TOKEN_TTL_S <= OFFER_TTL_S", ACCESS_TOKEN_TTL_S <= OFFER_TTL_S),
        ("4 <= TX_CODE_LENGTH <= 10", 4 <= TX_CODE_LENGTH <= 10),
        ("1 <= BATCH_SIZE_MAX <= 100", 1 <= BATCH_SIZE_MAX <= 100),
        ("TOKEN_REQUESTS_PER_S <= TOKEN_REQUESTS_BURST", TOKEN_REQUESTS_PER_S <= TOKEN_REQUESTS_BURST),
        ("REMOTE_ENROLMENT_SOURCES_MAX <= DCQL_CREDENTIALS_MAX", REMOTE_ENROLMENT_SOURCES_MAX <= DCQL_CREDENTIALS_MAX),
        ("REMOTE_ENROLMENT_SOURCES_MAX <= DCQL_CREDENTIAL_SETS_MAX",
         REMOTE_ENROLMENT_SOURCES_MAX <= DCQL_CREDENTIAL_SETS_MAX),
        ("REMOTE_ENROLMENT_MATCH_FIELDS_MAX <= DCQL_CLAIMS_MAX",
         REMOTE_ENROLMENT_MATCH_FIELDS_MAX <= DCQL_CLAIMS_MAX),
        ("0 < REMOTE_ENROLMENT_REQUEST_TTL_S <= OID4VP_REQUEST_LIFETIME_S_MAX",
         0 < REMOTE_ENROLMENT_REQUEST_TTL_S <= OID4VP_REQUEST_LIFETIME_S_MAX),
        ("REMOTE_ENROLMENT_STARTS_PER_S <= REMOTE_ENROLMENT_STARTS_BURST",
         REMOTE_ENROLMENT_STARTS_PER_S <= REMOTE_ENROLMENT_STARTS_BURST),
        ("0 < CREDENTIAL_TYPE_CACHE_S <= METADATA_CACHE_S", 0 < CREDENTIAL_TYPE_CACHE_S <= METADATA_CACHE_S),
        ("CREDENTIAL_TYPES_CACHED_MAX >= 1", CREDENTIAL_TYPES_CACHED_MAX >= 1),
    ))


check_limits()
