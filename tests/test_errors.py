"""One error root, one mapping to problem+json, limit relations that survive ``python -O``."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
from types import ModuleType

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from identity import errors as identity_errors
from identity.http.issuer_service import issuer_status
from identity.issuance import IssuanceRequestError
from identity.issuer_agent import IssuerLedgerError
from ledger import errors as ledger_errors
from ledger.errors import ImiError, LimitError
from node import errors as node_errors
from node.api.guard import install_problem_handlers
from node.api.problems import INTERNAL_DETAIL, ApiProblem, problem_for
from node.consensus import errors as consensus_errors

LIMIT_MODULES = (
    "ledger.constants",
    "node.constants",
    "node.api.constants",
    "node.consensus.limits",
    "identity.constants",
    "identity.ledger_constants",
    "identity.issuance",
    "cli.loadgen",
)


def _error_classes(module: ModuleType) -> list[type[BaseException]]:
    return [getattr(module, name) for name in module.__all__
            if isinstance(getattr(module, name), type) and issubclass(getattr(module, name), BaseException)]


# --- one root ---------------------------------------------------------------------------
@pytest.mark.parametrize("module", [ledger_errors, node_errors, identity_errors, consensus_errors])
def test_every_error_of_every_package_derives_from_the_root(module: ModuleType) -> None:
    classes = _error_classes(module)
    assert classes
    for cls in classes:
        assert issubclass(cls, ImiError), cls
        assert cls.reason and cls.reason == cls.reason.lower() and " " not in cls.reason


def test_the_root_carries_reason_and_a_read_only_context() -> None:
    error = node_errors.MempoolFull("full", context={"capacity": 3})
    assert error.reason == "mempool-full" and error.context["capacity"] == 3
    with pytest.raises(TypeError):
        error.context["capacity"] = 4  # type: ignore[index]
    overridden = identity_errors.LightClientError("x", reason="stale-header")
    assert overridden.reason == "stale-header" and dict(overridden.context) == {}
    assert type(overridden).reason == "unverified-answer"  # the override is the instance's only


def test_one_except_clause_catches_errors_of_every_package() -> None:
    raised: list[str] = []
    for error in (ledger_errors.ReplayError("r"), node_errors.WalError("w"),
                  identity_errors.WalletError("x"), ApiProblem("bad-request")):
        try:
            raise error
        except ImiError as exc:
            raised.append(exc.reason)
    assert raised == ["replayed-transaction", "wal-corrupt", "wallet-error", "bad-request"]


# --- one mapping ------------------------------------------------------------------------------
@pytest.mark.parametrize(("error", "status", "reason"), [
    (ledger_errors.ReplayError("again"), 409, "replayed-transaction"),
    (ledger_errors.TransactionError("t", reason="wrong-chain"), 422, "wrong-chain"),
    (ledger_errors.SignatureError("s", reason="some-new-rule"), 422, "some-new-rule"),
    (ledger_errors.EncodingError("e", reason="another-new-rule"), 400, "another-new-rule"),
    (identity_errors.UnauthorizedError("u"), 403, "unauthorized"),
    (node_errors.MempoolFull("full"), 503, "mempool-full"),
    (node_errors.MempoolError("no", reason="pool-rule"), 422, "pool-rule"),
    (node_errors.SyncError("down", reason="node-busy"), 503, "node-busy"),
    (ApiProblem("stale-state", "old", status=503), 503, "stale-state"),
    (ApiProblem("no-blocks"), 404, "no-blocks"),
])
def test_problem_for_keeps_the_reason_and_picks_the_status(error: ImiError, status: int, reason: str) -> None:
    problem = problem_for(error)
    assert (problem.status, problem.reason) == (status, reason)
    body = problem.to_json()
    assert body["reason"] == reason and body["status"] == status and body["type"].endswith("/" + reason)
    assert body["detail"] == str(error) or isinstance(error, ApiProblem)


def test_problem_for_hides_the_message_of_a_failing_store() -> None:
    problem = problem_for(ledger_errors.StorageError("table /var/lib/x/000012.ldb is short"))
    assert (problem.status, problem.reason, problem.detail) == (500, "storage-corrupt", INTERNAL_DETAIL)


def test_problem_for_answers_an_unmapped_error_of_ours_as_internal() -> None:
    problem = problem_for(identity_errors.WalletError("wallet password wrong"))
    assert (problem.status, problem.reason, problem.detail) == (500, "internal-error", INTERNAL_DETAIL)


def test_problem_for_takes_the_callers_status_and_keeps_the_detail() -> None:
    problem = problem_for(identity_errors.WalletError("locked"), status=409)
    assert (problem.status, problem.reason, problem.detail) == (409, "wallet-error", "locked")


@pytest.mark.parametrize(("error", "status"), [
    (IssuerLedgerError("x", reason="mempool-full"), 502),
    (IssuerLedgerError("x", reason="unauthorized"), 409),
    (IssuanceRequestError("x", reason="unknown-subject"), 404),
    (IssuanceRequestError("x", reason="nonce-used"), 400),
    (identity_errors.IssuanceError("x", reason="list-full"), 503),
    (identity_errors.IssuanceError("x"), 503),
    (identity_errors.WalletError("x"), 400),
])
def test_the_issuer_service_names_its_statuses_and_the_mapping_builds_the_document(
        error: ImiError, status: int) -> None:
    assert issuer_status(error) == status
    assert problem_for(error, status=issuer_status(error)).status == status


def test_the_issuer_service_leaves_other_errors_to_the_node_statuses() -> None:
    assert issuer_status(ledger_errors.ReplayError("r")) is None
    assert issuer_status(ApiProblem("bad-request")) is None


# --- limits that survive python -O -----------------------------------------------------------
@pytest.mark.parametrize("name", LIMIT_MODULES)
def test_the_shipped_limits_hold(name: str) -> None:
    importlib.import_module(name).check_limits()


@pytest.mark.parametrize(("name", "constant", "value"), [
    ("ledger.constants", "TX_BYTES_MAX", 10**9),
    ("node.constants", "PROPOSE_BATCH_TXS_MAX", 10**9),
    ("node.api.constants", "API_COMMIT_WAIT_MS_DEFAULT", 0),
    ("node.consensus.limits", "CATCHUP_BLOCKS_MAX", 10**6),
    ("identity.constants", "SALT_BYTES", 8),
    ("identity.ledger_constants", "STATUS_LIST_SIZE_MIN", 9),
    ("identity.issuance", "PROOF_SKEW_S", 10**6),
    ("cli.loadgen", "LOAD_WAIT_MS", 10**6),
])
def test_a_broken_relation_raises_a_limit_error_naming_it(
        monkeypatch: pytest.MonkeyPatch, name: str, constant: str, value: int) -> None:
    module = importlib.import_module(name)
    monkeypatch.setattr(module, constant, value)
    with pytest.raises(LimitError) as caught:
        module.check_limits()
    assert caught.value.context["module"] == name
    broken = caught.value.context["relations"]
    assert isinstance(broken, tuple) and broken and all(constant in text for text in broken)
    assert caught.value.reason == "limits-inconsistent"


def test_the_check_runs_under_python_dash_o() -> None:
    script = ("import ledger.constants as c\n"
              "assert False, 'asserts are on'\n")
    off = subprocess.run([sys.executable, "-O", "-c", script], check=True, capture_output=True, text=True, timeout=120)
    assert off.returncode == 0  # -O dropped the assert: an assert would guard nothing
    script = ("import ledger.constants as c\n"
              "from ledger.errors import LimitError\n"
              "c.VALIDATORS_MAX = 3\n"
              "try:\n    c.check_limits()\nexcept LimitError as e:\n    print(e.reason)\n")
    run = subprocess.run([sys.executable, "-O", "-c", script], check=True, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "limits-inconsistent"


# --- the handlers: one ImiError handler answers every error of ours --------------------------
def _app_raising(error: Exception, **kwargs: object) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app, logging.getLogger("test"), **kwargs)  # type: ignore[arg-type]

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("error", "status", "reason", "retry_after"), [
    (ledger_errors.SignatureError("bad", reason="threshold-not-met"), 422, "threshold-not-met", None),
    (ledger_errors.StorageError("disk"), 500, "storage-corrupt", None),
    (node_errors.MempoolFull("full"), 503, "mempool-full", "1"),
    (ApiProblem("stale-state", "old", status=503), 503, "stale-state", None),
    (identity_errors.WalletError("leaked"), 500, "internal-error", None),
])
def test_the_api_answers_each_error_with_its_problem(
        error: ImiError, status: int, reason: str, retry_after: str | None) -> None:
    answer = _app_raising(error).get("/boom")
    assert answer.status_code == status and answer.json()["reason"] == reason
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers.get("retry-after") == retry_after


def test_a_service_names_the_status_of_its_own_errors() -> None:
    answer = _app_raising(IssuanceRequestError("no such subject", reason="unknown-subject"),
                          status_of=issuer_status).get("/boom")
    assert answer.status_code == 404 and answer.json()["detail"] == "no such subject"
