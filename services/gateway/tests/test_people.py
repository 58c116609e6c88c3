"""People and their tokens: a real people file on disk, real argon2 hashes, and a small
FastAPI app behind the gateway's guard asking the same lookup a route would."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from structlog.testing import capture_logs

from servicedesk_gateway.auth import Caller, Directory, People, parse_tokens
from servicedesk_gateway.config import GatewaySettings
from servicedesk_gateway.guard import RequireBearerToken
from servicedesk_gateway.people import (
    PeopleFile,
    PeopleFileError,
    load_people,
    new_token,
    parse_people,
    toml_entry,
)
from servicedesk_gateway.people.__main__ import main as people_cli
from servicedesk_stack.demo import (
    DEMO_AGREEMENTS,
    DEMO_TOKENS,
    PEOPLE_FILE_HEADER,
    provider_r_medium,
)

AGREEMENT = uuid.UUID("00000000-0000-4000-8000-00000000000a")


def person(**fields: Any) -> tuple[str, str]:
    """A new token and its `[[person]]` entry."""
    made = new_token()
    return made.token, toml_entry(token_id=made.token_id, token_hash=made.token_hash, **fields)


@pytest.fixture(scope="module")
def mette() -> tuple[str, str]:
    return person(name="Mette Jensen", role="agent", groups=("first-line",))


@pytest.fixture(scope="module")
def ole() -> tuple[str, str]:
    return person(
        name="Ole Hansen",
        role="customer",
        organisation="Nordlys ApS",
        agreement_id=AGREEMENT,
        billing_contact=True,
    )


def write(path: Path, *entries: str) -> None:
    """Replaces the file as an editor that saves in place would."""
    path.write_text("\n".join(entries), encoding="utf-8")


SCHEME = HTTPBearer(auto_error=False)


def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(SCHEME)]
) -> Caller:
    """The route's dependency: the same lookup as the gateway's routes."""
    people: People = request.app.state.people
    found = people.lookup(credentials.credentials) if credentials else None
    if found is None:
        raise HTTPException(401, "unknown")
    return found


def app_for(people: People) -> FastAPI:
    """A route behind the gateway's guard whose dependency asks `people.lookup`."""
    app = FastAPI()
    app.state.people = people
    app.add_middleware(RequireBearerToken, people=people)

    @app.post("/me")
    async def me(request: Request, who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        return {
            "name": who.name,
            "role": who.role,
            "organisation": who.organisation,
            "body_bytes": len(await request.body()),
        }

    return app


def client_for(people: People) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(people)), base_url="http://gw"
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_file_keeps_a_hash_never_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    people = tmp_path / "people.toml"
    code = people_cli(["new-token", "--name", "Ole Hansen", "--role", "customer",
                       "--organisation", "Nordlys ApS", "--append", str(people)])  # fmt: skip
    assert code == 0
    token = capsys.readouterr().out.strip()
    secret = token.split("_", 2)[2]
    stored = people.read_text()
    (entry,) = tomllib.loads(stored)["person"]
    assert entry["token_hash"].startswith("$argon2id$")
    assert PasswordHasher().verify(entry["token_hash"], token)
    assert token not in stored
    assert secret not in stored
    assert PeopleFile(people).lookup(token) is not None


def test_the_cli_token_authenticates_against_the_printed_entry(tmp_path: Path) -> None:
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "servicedesk_gateway.people",
            "new-token",
            "--name",
            "Ole Hansen",
            "--role",
            "customer",
            "--organisation",
            "Nordlys ApS",
            "--agreement-id",
            str(AGREEMENT),
            "--billing-contact",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    token, blank, *entry = printed.splitlines()
    assert blank == ""
    assert token.startswith("sd_")
    assert token not in "\n".join(entry)
    (tmp_path / "people.toml").write_text("\n".join(entry))
    found = PeopleFile(tmp_path / "people.toml").lookup(token)
    assert found == Caller(
        name="Ole Hansen",
        role="customer",
        organisation="Nordlys ApS",
        agreement_id=AGREEMENT,
        billing_contact=True,
    )


def test_the_cli_appends_to_the_file_and_prints_only_the_token(
    tmp_path: Path, mette: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    people = tmp_path / "people.toml"
    write(people, mette[1])
    assert people_cli(["new-token", "--name", "Ada", "--role", "agent", "--group", "second-line",
                       "--group", "network", "--append", str(people)]) == 0  # fmt: skip
    token = capsys.readouterr().out.strip()
    assert "\n" not in token
    source = PeopleFile(people)
    assert source.lookup(token) == Caller("Ada", "agent", groups=("second-line", "network"))
    assert source.lookup(mette[0]) is not None  # the people already there stay


def test_the_cli_refuses_a_customer_without_organisation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert people_cli(["new-token", "--name", "Ole", "--role", "customer"]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""  # no token for an entry the file would refuse
    assert "organisation" in printed.err


def test_each_token_names_its_person(
    tmp_path: Path, mette: tuple[str, str], ole: tuple[str, str]
) -> None:
    write(tmp_path / "people.toml", mette[1], ole[1])
    people = PeopleFile(tmp_path / "people.toml")
    assert people.lookup(mette[0]) == Caller("Mette Jensen", "agent", groups=("first-line",))
    customer = people.lookup(ole[0])
    assert customer is not None
    assert (customer.organisation, customer.agreement_id, customer.billing_contact) == (
        "Nordlys ApS",
        AGREEMENT,
        True,
    )
    assert customer.may("customer")
    assert not customer.may("agent")
    assert not customer.may("admin")


def test_a_wrong_secret_a_foreign_token_and_junk_are_refused(
    tmp_path: Path, mette: tuple[str, str]
) -> None:
    write(tmp_path / "people.toml", mette[1])
    people = PeopleFile(tmp_path / "people.toml")
    prefix, _, secret = mette[0].rpartition("_")
    wrong = f"{prefix}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    assert people.lookup(wrong) is None
    assert people.lookup(wrong) is None  # remembered, still refused
    assert people.lookup(new_token().token) is None  # an id the file does not know
    for junk in ("", "agent-token", mette[0] + " ", "sd__x", "sd_" + "a" * 600):
        assert people.lookup(junk) is None
    assert people.lookup(mette[0]) is not None


async def test_the_guard_admits_people_of_the_file_and_refuses_others_before_the_body(
    tmp_path: Path, mette: tuple[str, str], ole: tuple[str, str]
) -> None:
    write(tmp_path / "people.toml", mette[1], ole[1])
    async with client_for(PeopleFile(tmp_path / "people.toml")) as client:
        response = await client.post("/me", headers=bearer(ole[0]), content=b"hello")
        assert response.json() == {
            "name": "Ole Hansen",
            "role": "customer",
            "organisation": "Nordlys ApS",
            "body_bytes": 5,
        }
        body_read = False

        async def body() -> Any:
            nonlocal body_read
            body_read = True
            yield b"x" * 1000

        refused = await client.post("/me", headers=bearer(mette[0] + "x"), content=body())
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert not body_read


async def test_an_edited_file_admits_the_added_and_refuses_the_removed_without_restart(
    tmp_path: Path, mette: tuple[str, str], ole: tuple[str, str]
) -> None:
    path = tmp_path / "people.toml"
    write(path, mette[1])
    async with client_for(PeopleFile(path, recheck_seconds=0.05)) as client:
        assert (await client.post("/me", headers=bearer(mette[0]))).status_code == 200
        assert (await client.post("/me", headers=bearer(ole[0]))).status_code == 401

        write(path, ole[1])  # Ole added, Mette removed

        async def ole_admitted() -> bool:
            return (await client.post("/me", headers=bearer(ole[0]))).status_code == 200

        await eventually_async(ole_admitted, what="the added person admitted")
        # Mette was admitted (and cached) before: removal is in force all the same.
        assert (await client.post("/me", headers=bearer(mette[0]))).status_code == 401


async def eventually_async(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Polls an async check with a deadline (the client lives on the test's event loop)."""
    deadline = asyncio.get_running_loop().time() + 10
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_replaced_file_is_noticed_too(
    tmp_path: Path, mette: tuple[str, str], ole: tuple[str, str]
) -> None:
    """Editors and deploy tools often write a new file and rename it over the old one."""
    path = tmp_path / "people.toml"
    write(path, mette[1])
    people = PeopleFile(path, recheck_seconds=0)
    assert people.lookup(ole[0]) is None
    write(tmp_path / "people.new", mette[1], ole[1])
    os.replace(tmp_path / "people.new", path)
    assert people.lookup(ole[0]) is not None
    assert people.lookup(mette[0]) is not None


def test_a_broken_edit_keeps_the_people_in_force_and_logs_where(
    tmp_path: Path, mette: tuple[str, str], ole: tuple[str, str]
) -> None:
    path = tmp_path / "people.toml"
    write(path, mette[1])
    people = PeopleFile(path, recheck_seconds=0)
    broken = ole[1].replace('organisation = "Nordlys ApS"\n', "")  # a customer of no one
    with capture_logs() as logs:
        write(path, mette[1], broken)
        assert people.lookup(mette[0]) is not None  # still in
        assert people.lookup(ole[0]) is None  # not let in by a file that was refused
        assert people.lookup(mette[0]) is not None  # looked at again: logged once
    refusals = [entry for entry in logs if entry["event"] == "people_file_refused"]
    assert len(refusals) == 1
    assert refusals[0]["log_level"] == "error"
    assert "person 2 (line 8)" in refusals[0]["problem"]
    assert "organisation" in refusals[0]["problem"]
    assert people.problem == refusals[0]["problem"]

    write(path, ole[1])  # fixed: now the file is in force again, Mette removed
    assert people.lookup(ole[0]) is not None
    assert people.lookup(mette[0]) is None
    assert people.problem is None


def test_a_vanished_file_keeps_the_people_in_force(tmp_path: Path, mette: tuple[str, str]) -> None:
    path = tmp_path / "people.toml"
    write(path, mette[1])
    people = PeopleFile(path, recheck_seconds=0)
    path.unlink()
    assert people.lookup(mette[0]) is not None
    assert people.problem is not None
    assert "cannot be read" in people.problem
    write(path, "")  # an empty file is valid: no one
    assert people.lookup(mette[0]) is None


def test_the_file_is_looked_at_only_after_the_recheck_interval(
    tmp_path: Path, mette: tuple[str, str], ole: tuple[str, str]
) -> None:
    now = [100.0]
    path = tmp_path / "people.toml"
    write(path, mette[1])
    people = PeopleFile(path, recheck_seconds=1.0, monotonic=lambda: now[0])
    write(path, ole[1])
    now[0] += 0.5
    assert people.lookup(ole[0]) is None
    assert people.lookup(mette[0]) is not None
    now[0] += 0.6
    assert people.lookup(ole[0]) is not None
    assert people.reloads == 1


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda e: e.replace("[[person]]", "[[person]"), "line 1"),
        (lambda e: e.replace('role = "customer"', 'role = "superuser"'), "role"),
        (lambda e: e.replace("organisation", "organization"), "organization"),
        (lambda e: e.replace(str(AGREEMENT), "not-a-uuid"), "agreement_id"),
        (
            lambda e: e.replace("billing_contact = true", 'billing_contact = "yes"'),
            "billing_contact",
        ),
        (lambda e: e.replace("$argon2id$", "$2b$"), "token_hash"),
        (lambda e: e.replace('role = "customer"', 'role = "agent"'), "organisation"),
        (lambda e: e + e, "token_id"),
        (lambda e: "[[persons]]" + e.partition("]]")[2], "persons"),
    ],
)
def test_a_broken_file_at_start_is_an_error_naming_the_field(
    tmp_path: Path, ole: tuple[str, str], edit: Callable[[str], str], named: str
) -> None:
    path = tmp_path / "people.toml"
    write(path, edit(ole[1]))
    with pytest.raises(PeopleFileError, match=str(path)) as refused:
        load_people(GatewaySettings(gateway_people_file=path))
    assert named in str(refused.value)
    salt_and_hash = tomllib.loads(ole[1])["person"][0]["token_hash"][-60:]
    assert salt_and_hash not in str(refused.value)  # hashes stay out of errors and logs


def test_a_missing_file_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PeopleFileError, match="cannot be read"):
        PeopleFile(tmp_path / "nobody.toml")


def test_random_tokens_do_not_grow_memory(tmp_path: Path, mette: tuple[str, str]) -> None:
    write(tmp_path / "people.toml", mette[1])
    people = PeopleFile(tmp_path / "people.toml", refusals_remembered=8)
    token_id = mette[0].split("_")[1]
    for _ in range(2000):  # unknown ids: refused without a verification, nothing kept
        assert people.lookup(f"sd_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}") is None
    assert people.remembered() == (0, 0)
    for _ in range(20):  # the right id, wrong secrets: each verified once, the last 8 kept
        assert people.lookup(f"sd_{token_id}_{secrets.token_urlsafe(32)}") is None
    assert people.remembered() == (0, 8)
    for _ in range(3):
        assert people.lookup(mette[0]) is not None
    assert people.remembered() == (1, 8)


def test_hashes_of_other_argon2id_costs_verify(tmp_path: Path) -> None:
    token = f"sd_legacy-1_{secrets.token_urlsafe(32)}"
    stronger = PasswordHasher(time_cost=3, memory_cost=65_536, parallelism=4).hash(token)
    write(
        tmp_path / "people.toml",
        toml_entry(name="Kim", role="admin", token_id="legacy-1", token_hash=stronger),
    )
    assert PeopleFile(tmp_path / "people.toml").lookup(token) == Caller("Kim", "admin")


async def test_tokens_of_the_variable_and_of_the_file_work_side_by_side(
    tmp_path: Path, ole: tuple[str, str]
) -> None:
    write(tmp_path / "people.toml", ole[1])
    people = load_people(
        GatewaySettings(
            gateway_tokens=f"agent-token:agent:agent:first-line,c-token:customer:Eva:Acme:{AGREEMENT}",
            gateway_people_file=tmp_path / "people.toml",
        )
    )
    async with client_for(people) as client:
        for token, name in (("agent-token", "agent"), ("c-token", "Eva"), (ole[0], "Ole Hansen")):
            response = await client.post("/me", headers=bearer(token))
            assert response.json()["name"] == name
        assert (await client.post("/me", headers=bearer("agent-tokenx"))).status_code == 401
    assert people.lookup("agent-token") == Caller("agent", "agent", groups=("first-line",))


def test_customers_in_the_variable_are_bound_to_an_organisation() -> None:
    table = parse_tokens(
        f"c:customer:Ole Hansen:Nordlys ApS:{AGREEMENT}:billing,d:customer:Eva:Acme"
    )
    assert table.lookup("c") == Caller(
        "Ole Hansen", "customer", organisation="Nordlys ApS", agreement_id=AGREEMENT,
        billing_contact=True,
    )  # fmt: skip
    assert table.lookup("d") == Caller("Eva", "customer", organisation="Acme")
    assert table.lookup("e") is None
    assert table["d"].organisation == "Acme"  # still a dict for code that reads one


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("c:customer:Ole", "organisation"),
        ("c:customer:Ole:Nordlys:not-a-uuid", "agreement_id"),
        ("c:customer:Ole:Nordlys::yes", "billing"),
        ("a:agent:Mette:g:extra", "too many"),
        ("secret:superuser", "expected token:role"),
        ("a:agent,a:admin", "twice"),
    ],
)
def test_variable_entries_that_do_not_fit_name_the_problem(spec: str, named: str) -> None:
    with pytest.raises(ValueError, match=named) as refused:
        parse_tokens(spec)
    assert "secret" not in str(refused.value).replace("secr...", "")


def test_a_person_that_does_not_fit_the_role_cannot_exist() -> None:
    with pytest.raises(ValueError, match="organisation"):
        Caller("Ole", "customer")
    with pytest.raises(ValueError, match="only a customer"):
        Caller("Mette", "agent", organisation="Nordlys")
    with pytest.raises(ValueError, match="role"):
        Caller("Root", "superuser")
    admin = Caller("Kim", "admin")
    assert admin.may("agent")
    assert admin.may("admin")
    assert not Caller("Mette", "agent").may("admin")


def test_the_demo_people_of_make_up(tmp_path: Path) -> None:
    table = parse_tokens(DEMO_TOKENS)
    assert table.lookup("agent-token") == Caller("agent", "agent", groups=("first-line",))
    assert table.lookup("admin-token") == Caller("admin", "admin")
    customer = table.lookup("customer-token")
    assert customer is not None
    assert customer.role == "customer"
    assert (customer.organisation, customer.agreement_id) == (
        provider_r_medium()["customer"],
        next(iter(DEMO_AGREEMENTS)),
    )
    (tmp_path / "people.toml").write_text(PEOPLE_FILE_HEADER)  # the file make up starts with
    assert len(PeopleFile(tmp_path / "people.toml")) == 0


def test_an_agents_address_comes_from_the_file_and_a_bad_one_is_refused(
    tmp_path: Path, ole: tuple[str, str]
) -> None:
    token, entry = person(name="Jens Poulsen", role="agent", email="jens@provider-v.dk")
    path = tmp_path / "people.toml"
    write(path, entry, ole[1])
    directory = Directory(parse_tokens("t:agent:mette"), PeopleFile(path))
    assert directory.email_of("Jens Poulsen") == "jens@provider-v.dk"
    assert directory.email_of("mette") is None  # the variable keeps no addresses
    caller_of_token = directory.lookup(token)
    assert caller_of_token is not None
    assert caller_of_token.email == "jens@provider-v.dk"
    _, broken = person(name="Bad Address", role="agent", email="jens at provider")
    with pytest.raises(PeopleFileError, match="email"):
        parse_people(broken)
