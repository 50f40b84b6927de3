"""DCQL (OpenID4VP 1.0 §6, §7): strict parsing, claims path pointers, what a query asks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity import dcql
from identity.constants import DCQL_CLAIMS_MAX, DCQL_CREDENTIALS_MAX, DCQL_PATH_DEPTH_MAX
from identity.errors import DcqlError

PID = "https://example.gov/pid"
RESIDENCE = "https://example.gov/residence"

# One question at one door: residence + age >= 18 + no criminal record, the last two from
# either of two credential types (credential_sets), the name only if the first option fails.
ONE_DOOR: dict[str, Any] = {
    "credentials": [
        {"id": "residence", "format": "dc+sd-jwt", "meta": {"vct_values": [RESIDENCE]},
         "claims": [{"path": ["address", "locality"]}]},
        {"id": "pid", "format": "dc+sd-jwt", "meta": {"vct_values": [PID]},
         "claims": [{"id": "over18", "path": ["age_equal_or_over", "18"]},
                    {"id": "name", "path": ["given_name"]},
                    {"id": "nationality", "path": ["nationalities", None], "values": ["CN", "HK"]}],
         "claim_sets": [["over18"], ["over18", "name"]]},
        {"id": "record", "format": "dc+sd-jwt", "meta": {"vct_values": ["https://example.gov/no-record"]},
         "claims": [{"path": ["no_criminal_record"], "values": [True]}]},
    ],
    "credential_sets": [
        {"options": [["residence"]], "purpose": "where you live"},
        {"options": [["pid", "record"], ["pid"]], "required": True},
        {"options": [["record"]], "required": False},
    ],
}


def test_one_door_query_parses_and_round_trips() -> None:
    query = dcql.parse_query(ONE_DOOR)
    assert [c.id for c in query.credentials] == ["residence", "pid", "record"]
    assert query.credential("pid").claims[2].path == ("nationalities", None)
    assert query.credential_sets[2].required is False
    assert dcql.parse_query(query.to_json()) == query
    assert dcql.requested_paths(query.credential("pid")) == (("age_equal_or_over", "18"), ("given_name",))


def test_unknown_members_are_ignored_as_the_spec_requires() -> None:
    value = copy.deepcopy(ONE_DOOR)
    value["future"] = 1
    value["credentials"][0]["trusted_authorities"] = [{"type": "aki", "values": ["x"]}]
    value["credentials"][0]["claims"][0]["future"] = True
    assert dcql.parse_query(value) == dcql.parse_query(ONE_DOOR)


def _mutate(path: list[Any], new: Any) -> dict[str, Any]:
    value = copy.deepcopy(ONE_DOOR)
    target: Any = value
    for step in path[:-1]:
        target = target[step]
    if new is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = new
    return value


_DELETE = object()


@pytest.mark.parametrize(("path", "new", "reason"), [
    (["credentials"], [], "invalid-dcql"),
    (["credentials"], _DELETE, "invalid-dcql"),
    (["credentials", 0, "id"], "has space", "invalid-dcql"),
    (["credentials", 0, "id"], "", "invalid-dcql"),
    (["credentials", 1, "id"], "residence", "invalid-dcql"),  # duplicate id
    (["credentials", 0, "format"], "mso_mdoc", "unsupported-format"),
    (["credentials", 0, "format"], _DELETE, "unsupported-format"),
    (["credentials", 0, "meta"], [], "invalid-dcql"),
    (["credentials", 0, "meta", "vct_values"], [], "invalid-dcql"),
    (["credentials", 0, "meta", "vct_values"], [""], "invalid-dcql"),
    (["credentials", 0, "claims"], [], "invalid-dcql"),
    (["credentials", 0, "claims", 0, "path"], [], "invalid-dcql"),
    (["credentials", 0, "claims", 0, "path"], ["a", -1], "invalid-dcql"),
    (["credentials", 0, "claims", 0, "path"], ["a", 1.5], "invalid-dcql"),
    (["credentials", 0, "claims", 0, "path"], ["a", True], "invalid-dcql"),
    (["credentials", 0, "claims", 0, "path"], "address", "invalid-dcql"),
    (["credentials", 0, "claims", 0, "values"], [{"a": 1}], "invalid-dcql"),
    (["credentials", 1, "claims", 1, "path"], ["age_equal_or_over", "18"], "invalid-dcql"),  # same claim twice
    (["credentials", 1, "claims", 1, "id"], "over18", "invalid-dcql"),  # duplicate claim id
    (["credentials", 1, "claims", 1, "id"], _DELETE, "invalid-dcql"),  # claim_sets needs every id
    (["credentials", 1, "claim_sets"], [["nope"]], "invalid-dcql"),
    (["credentials", 1, "claim_sets"], [[]], "invalid-dcql"),
    (["credentials", 0, "claim_sets"], [["x"]], "invalid-dcql"),  # no claim ids to name
    (["credentials", 0, "multiple"], "yes", "invalid-dcql"),
    (["credentials", 0, "require_cryptographic_holder_binding"], 1, "invalid-dcql"),
    (["credential_sets"], [], "invalid-dcql"),
    (["credential_sets", 0, "options"], [["ghost"]], "invalid-dcql"),
    (["credential_sets", 0, "options"], [], "invalid-dcql"),
    (["credential_sets", 0, "required"], "true", "invalid-dcql"),
    (["credential_sets", 0, "purpose"], ["a list"], "invalid-dcql"),
])
def test_each_fault_in_a_query_is_refused_with_a_stable_reason(path: list[Any], new: Any, reason: str) -> None:
    with pytest.raises(DcqlError) as err:
        dcql.parse_query(_mutate(path, new))
    assert err.value.reason == reason


@pytest.mark.parametrize("value", [None, [], "query", 1, {"credentials": "x"}])
def test_a_query_that_is_not_an_object_is_refused(value: Any) -> None:
    with pytest.raises(DcqlError):
        dcql.parse_query(value)


def test_every_list_is_bounded() -> None:
    credential = {"format": "dc+sd-jwt", "meta": {"vct_values": [PID]}}
    too_many = {"credentials": [{"id": f"c{i}", **credential} for i in range(DCQL_CREDENTIALS_MAX + 1)]}
    with pytest.raises(DcqlError) as err:
        dcql.parse_query(too_many)
    assert err.value.reason == "dcql-too-large"
    claims = [{"path": [f"c{i}"]} for i in range(DCQL_CLAIMS_MAX + 1)]
    with pytest.raises(DcqlError):
        dcql.parse_query({"credentials": [{"id": "a", **credential, "claims": claims}]})
    with pytest.raises(DcqlError):
        dcql.parse_path(["a"] * (DCQL_PATH_DEPTH_MAX + 1))


@pytest.mark.parametrize(("allowed", "requested", "covers"), [
    (("address",), ("address",), True),
    (("address",), ("address", "locality"), True),
    (("address", "locality"), ("address",), False),
    (("nationalities", None), ("nationalities", 0), True),
    (("nationalities", None), ("nationalities", None), True),
    (("nationalities", 0), ("nationalities", None), False),
    (("nationalities", 0), ("nationalities", 1), False),
    (("age_equal_or_over", "18"), ("age_equal_or_over", "21"), False),
    (("a", None), ("a", "b"), False),
    (("a", 1), ("a", "1"), False),
])
def test_a_registered_path_covers_itself_and_its_sub_claims_only(
        allowed: dcql.ClaimPath, requested: dcql.ClaimPath, covers: bool) -> None:
    assert dcql.path_covers(allowed, requested) is covers


_element = st.one_of(st.none(), st.integers(0, 5), st.text("abc", min_size=1, max_size=3))
_paths = st.lists(_element, min_size=1, max_size=4).map(tuple)


@given(_paths, _paths)
def test_covering_is_a_prefix_relation(a: dcql.ClaimPath, b: dcql.ClaimPath) -> None:
    assert dcql.path_covers(a, a)
    if dcql.path_covers(a, b) and dcql.path_covers(b, a):
        assert len(a) == len(b)
    if dcql.path_covers(a, b):
        assert dcql.path_covers(a, b + ("x",))  # covering a claim covers what lies below it
