"""Fictional people the demo agencies know (``imi devnet up --demo``); every name, number and
address here is made up.

Each agency keys its register by its own subject id: the public security bureau by the
resident identity number, the civil affairs bureau by its residence file number, and its
entry also holds the resident identity number, which remote enrolment matches. A
register entry holds, per credential type, exactly the claims that type's published
definition lists (:func:`register_for`), so the issuer issues the type as published. The
birth dates span the published age thresholds (14 to 65), and one person has a criminal
record, so scripts can ask questions whose answer is no.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cli.demo.agencies import CIVIL_RESIDENCE_VCT, REMOTE_ENROLMENT_MATCH, Agency


@dataclass(frozen=True, slots=True)
class Person:
    """One fictional resident of Foshan: every claim any demo agency can issue about them."""

    national_id: str  # the resident identity number: the public security bureau's subject id
    residence_file: str  # the civil affairs bureau's subject id
    given_name: str
    family_name: str
    birthdate: str
    district: str
    street_address: str
    no_criminal_record: bool
    checked_on: str = "2026-11-01"

    def claims(self) -> dict[str, Any]:
        return {
            "given_name": self.given_name, "family_name": self.family_name, "birthdate": self.birthdate,
            "national_id": self.national_id, "nationality": "CN",
            "address": {"street_address": self.street_address, "district": self.district, "city": "Foshan",
                        "province": "Guangdong"},
            "no_criminal_record": self.no_criminal_record, "checked_on": self.checked_on,
        }


PEOPLE: Final = (
    Person("440604201103020022", "FS-CC-2011-0302", "Xiaoyu", "Chen", "2011-03-02", "Chancheng",
           "3 Lianhua Road, Room 502", True),
    Person("440605200708190034", "FS-NH-2007-0819", "Hao", "Wang", "2007-08-19", "Nanhai",
           "88 Guicheng Avenue, Room 1101", True),
    Person("440604199006150044", "FS-CC-1990-0615", "Fang", "Zhao", "1990-06-15", "Chancheng",
           "21 Zumiao Road, Room 803", True),
    Person("440606197401300050", "FS-SD-1974-0130", "Jian", "Huang", "1974-01-30", "Shunde",
           "7 Daliang Street", True),
    Person("440604195611110069", "FS-CC-1956-1111", "Lan", "Zhou", "1956-11-11", "Chancheng",
           "15 Jiangwan Road, Room 201", True),
    Person("440605199912240072", "FS-NH-1999-1224", "Wei", "Liang", "1999-12-24", "Nanhai",
           "40 Haiwu Road, Room 1604", False),
)


def subject_id(agency: Agency, person: Person) -> str:
    """The agency's own id for ``person``: a residence file number at civil affairs, the resident
    identity number at the public security bureau."""
    return person.residence_file if CIVIL_RESIDENCE_VCT in agency.vcts else person.national_id


def register_for(agency: Agency, people: tuple[Person, ...] = PEOPLE) -> dict[str, Any]:
    """The agency's register of ``people`` (the JSON form of :class:`identity.issuer_agent.Register`):
    per subject id, per credential type the agency publishes, the claims its definition lists
    (``by_vct``); and the fields remote enrolment matches, the resident identity number
    (``claims``, which no type issues from: each type has its ``by_vct`` entry)."""
    return {subject_id(agency, person): {"claims": _matched(person), "by_vct": {
        vct: _listed(person.claims(), definition) for vct, definition in agency.vcts.items()}}
        for person in people}


def _matched(person: Person) -> dict[str, Any]:
    claims = person.claims()
    return {field: claims[claim] for field, claim in REMOTE_ENROLMENT_MATCH.items()}


def _listed(claims: Mapping[str, Any], definition: Mapping[str, Any]) -> dict[str, Any]:
    return {name: claims[name] for name in definition["claims"] if name in claims}


__all__ = ["PEOPLE", "Person", "register_for", "subject_id"]
