"""The people file (`GATEWAY_PEOPLE_FILE`): TOML, one `[[person]]` table per token, hashes
only; re-read when it changes, without a restart.

Reload rules:
- At most once every `recheck_seconds` a lookup looks at the file's identity (inode, size,
  modification and change times); only a changed file is read again.
- A valid file replaces the people in force as a whole: someone added gets in, someone
  removed (or whose token was replaced) is refused from that moment on.
- A file that cannot be read, parsed or validated (or that is missing) leaves the people in
  force unchanged and logs one error naming the line and field; it is looked at again when
  it changes. Bad input never locks everyone out; to remove everyone, write a valid file
  without people.
- At start (`PeopleFile(...)`) such a file raises `PeopleFileError` naming the problem.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import tomllib
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

from servicedesk_contracts.messages import Email
from servicedesk_gateway.auth import MAX_TOKEN_CHARS, Caller, person_problems
from servicedesk_gateway.people.tokens import HASHER, TOKEN_ID_SHAPE, token_id_of
from servicedesk_runtime.logs import get_logger

REFUSALS_REMEMBERED: Final = 4096
"""Wrong secrets for a known token id remembered (LRU), so a client repeating one does not
cost an argon2 verification each time; a bounded number, so random ones cannot grow memory."""
CONCURRENT_VERIFICATIONS: Final = 2
"""argon2 verifications at the same time (each takes ~19 MiB and a core for ~30 ms)."""


class PeopleFileError(ValueError):
    """The people file cannot be used; the message names the file, line and field."""


def _argon2id_hash(value: str) -> str:
    try:
        parameters = extract_parameters(value)
    except InvalidHashError:
        raise ValueError("not an argon2 hash (expected $argon2id$v=19$m=...)") from None
    if parameters.type is not Type.ID:
        raise ValueError("must be an argon2id hash ($argon2id$...)")
    return value


def _token_id(value: str) -> str:
    if not TOKEN_ID_SHAPE.fullmatch(value):
        raise ValueError("must be 4 to 64 letters, digits or '-'")
    return value


OneLine = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[^\r\n\t]*$")]


class PersonEntry(BaseModel):
    """One `[[person]]` table as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: OneLine
    role: Literal["agent", "admin", "customer"]
    token_id: Annotated[StrictStr, AfterValidator(_token_id)]
    token_hash: Annotated[StrictStr, AfterValidator(_argon2id_hash)]
    groups: tuple[OneLine, ...] = ()
    organisation: OneLine | None = None
    agreement_id: uuid.UUID | None = None
    billing_contact: StrictBool = False
    email: Email | None = None

    @model_validator(mode="after")
    def _fits_the_role(self) -> PersonEntry:
        for problem in person_problems(
            self.name,
            self.role,
            self.groups,
            self.organisation,
            self.agreement_id,
            self.billing_contact,
        ):
            raise ValueError(problem)
        return self

    def caller(self) -> Caller:
        return Caller(
            name=self.name,
            role=self.role,
            groups=self.groups,
            organisation=self.organisation,
            agreement_id=self.agreement_id,
            billing_contact=self.billing_contact,
            email=self.email,
        )


_PERSON_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*person[ \t]*\]\]", re.MULTILINE)


def parse_people(text: str, source: str = "people file") -> dict[str, PersonEntry]:
    """token_id -> entry. Raises PeopleFileError naming `source`, the line and the field."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as problem:
        raise PeopleFileError(f"{source}: not valid TOML: {problem}") from None
    unknown = sorted(set(document) - {"person"})
    if unknown:
        raise PeopleFileError(
            f"{source}: unknown top-level key {unknown[0]!r} (only [[person]] tables)"
        )
    persons = document.get("person", [])
    if not isinstance(persons, list):
        raise PeopleFileError(f"{source}: 'person' must be written [[person]], one per token")
    lines = [text.count("\n", 0, match.start()) + 1 for match in _PERSON_HEADER.finditer(text)]
    entries: dict[str, PersonEntry] = {}
    where: dict[str, str] = {}
    for index, raw in enumerate(persons):
        place = f"person {index + 1}"
        if len(lines) == len(persons):
            place += f" (line {lines[index]})"
        entry = _entry(raw, f"{source}: {place}")
        if entry.token_id in entries:
            raise PeopleFileError(
                f"{source}: {place}: token_id: {entry.token_id!r} is already used by "
                f"{where[entry.token_id]}"
            )
        entries[entry.token_id] = entry
        where[entry.token_id] = place
    return entries


def _entry(raw: Any, place: str) -> PersonEntry:
    if not isinstance(raw, dict):
        raise PeopleFileError(f"{place}: must be a table")
    name = raw.get("name")
    if isinstance(name, str):
        place += f" {name[:60]!r}"
    try:
        return PersonEntry.model_validate(raw)
    except ValidationError as invalid:
        error = invalid.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "entry"
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"] and ":" in message:
            field, _, message = message.partition(": ")
        raise PeopleFileError(f"{place}: {field}: {message}") from None


@dataclass
class _People:
    """The people in force and what was learnt about tokens since they were read (a reload
    replaces the whole object: the caches go with the people they were learnt from)."""

    entries: dict[str, PersonEntry]
    callers: dict[str, Caller]
    admitted: dict[bytes, Caller] = field(default_factory=dict)
    """sha256(token) -> person, for tokens verified once (at most one per entry)."""
    refused: OrderedDict[bytes, None] = field(default_factory=OrderedDict)

    @classmethod
    def of(cls, entries: dict[str, PersonEntry]) -> _People:
        return cls(entries, {token_id: entry.caller() for token_id, entry in entries.items()})


_Identity = tuple[int, int, int, int, int]
_MISSING: Final[_Identity] = (0, 0, 0, 0, 0)


def _identity(stat: os.stat_result) -> _Identity:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class _Unusable(Exception):
    def __init__(self, version: _Identity | None, problem: str) -> None:
        super().__init__(problem)
        self.version = version
        """The file's identity when it was found unusable; None: try again."""


class PeopleFile:
    """People from a TOML file of hashed tokens (see the module's reload rules)."""

    def __init__(
        self,
        path: Path | str,
        recheck_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        refusals_remembered: int = REFUSALS_REMEMBERED,
    ) -> None:
        self.path = Path(path)
        self.refusals_remembered = refusals_remembered
        self.recheck_seconds = recheck_seconds
        self._monotonic = monotonic
        self._reloading = threading.Lock()
        self._caching = threading.Lock()
        self._verifying = threading.BoundedSemaphore(CONCURRENT_VERIFICATIONS)
        try:
            self._seen, entries = self._read()
        except _Unusable as unusable:
            raise PeopleFileError(str(unusable)) from None
        self._refused: _Identity | None = None
        self.problem: str | None = None
        """Why the file as it is now is not in force (None: it is)."""
        self._people = _People.of(entries)
        self._checked = monotonic()
        self.reloads = 0
        """Valid versions read since the first."""

    def __len__(self) -> int:
        return len(self._people.entries)

    def email_of(self, name: str) -> str | None:
        """The address of the person of that name in the file (as in force now)."""
        self._check_for_changes()
        for entry in self._people.entries.values():
            if entry.name == name and entry.email:
                return entry.email
        return None

    def lookup(self, token: str) -> Caller | None:
        self._check_for_changes()
        token_id = token_id_of(token) if len(token) <= MAX_TOKEN_CHARS else None
        people = self._people
        if token_id is None or token_id not in people.entries:
            return None  # no hash to verify: refused at once, nothing remembered
        digest = hashlib.sha256(token.encode()).digest()
        known = people.admitted.get(digest)
        if known is not None:
            return known
        with self._caching:
            if digest in people.refused:
                people.refused.move_to_end(digest)
                return None
        with self._verifying:
            try:
                HASHER.verify(people.entries[token_id].token_hash, token)
            except (VerificationError, InvalidHashError):
                with self._caching:
                    people.refused[digest] = None
                    while len(people.refused) > self.refusals_remembered:
                        people.refused.popitem(last=False)
                return None
        caller = people.callers[token_id]
        people.admitted[digest] = caller
        return caller

    def remembered(self) -> tuple[int, int]:
        """Tokens remembered: (admitted, refused)."""
        return len(self._people.admitted), len(self._people.refused)

    def _check_for_changes(self) -> None:
        now = self._monotonic()
        if now - self._checked < self.recheck_seconds:
            return
        if not self._reloading.acquire(blocking=False):
            return  # another thread is looking; go on with the people in force
        try:
            self._checked = now
            try:
                current = _identity(self.path.stat())
            except OSError:
                current = _MISSING
            if current in (self._seen, self._refused):
                return
            try:
                self._seen, entries = self._read()
            except _Unusable as unusable:
                if unusable.version is not None:
                    self._refused = unusable.version
                    self.problem = str(unusable)
                    get_logger(__name__).error(
                        "people_file_refused",
                        problem=str(unusable),
                        people_kept=len(self._people.entries),
                        hint="the people in force stay until the file is valid again",
                    )
                return
            self._refused = None
            self.problem = None
            self._people = _People.of(entries)
            self.reloads += 1
            get_logger(__name__).info(
                "people_file_reloaded", path=str(self.path), people=len(entries)
            )
        finally:
            self._reloading.release()

    def _read(self) -> tuple[_Identity, dict[str, PersonEntry]]:
        """The file's identity and entries; raises _Unusable naming the problem."""
        source = f"people file {self.path}"
        try:
            with self.path.open("rb") as file:
                version = _identity(os.fstat(file.fileno()))
                content = file.read()
                if _identity(os.fstat(file.fileno())) != version:
                    raise _Unusable(None, f"{source}: changed while it was read")
        except OSError as problem:
            raise _Unusable(_MISSING, f"{source}: cannot be read: {problem}") from None
        try:
            return version, parse_people(content.decode("utf-8"), source)
        except UnicodeDecodeError as problem:
            raise _Unusable(version, f"{source}: not UTF-8: {problem}") from None
        except PeopleFileError as problem:
            raise _Unusable(version, str(problem)) from None
