"""The conversation through the gateway: the request and every reply in order, internal
notes for agents only, attachments downloadable by whoever sees their message, set-aside
mail listed for agents with its raw record."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from services.gateway.tests.view_messages import NOW, customer_reply, opened

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_gateway.auth import parse_tokens
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.blobs import BlobStore
from servicedesk_stack.demo import provider_v_danish

AGENT = {"Authorization": "Bearer a-token"}
CUSTOMER = {"Authorization": "Bearer c-token"}
TOKENS = "a-token:agent:mette,c-token:customer:Anna:Acme"
SCREENSHOT = b"\x89PNG fake screenshot bytes"
NOTE = "Probably the scanner firmware (do not tell the customer yet)"
Desk = tuple[httpx.AsyncClient, list[Message], m.TicketOpened, BlobStore]


@pytest.fixture
async def desk(view: GatewayView, tmp_path: Path) -> AsyncIterator[Desk]:
    blobs = BlobStore(tmp_path / "blobs")
    sha = blobs.put(SCREENSHOT)
    attachment = {"filename": "fejl ø.png", "content_type": "image/png", "size": 27, "sha256": sha}
    ticket = opened(
        3,
        message_id="<a1@acme.example>",
        attachments=[attachment],
        custom_fields=[{"name": "version", "type": "version", "value": "4.2.1"}],
    )
    note = m.InternalNoteAdded.create(
        producer="intake",
        subject_id=ticket.subject_id,
        data={"author": "mette", "body": NOTE, "reference": "SD-000003", "added_at": NOW},
        occurred_at=NOW + timedelta(minutes=5),
    )
    reply = m.AgentReplied.create(
        producer="intake",
        subject_id=ticket.subject_id,
        data={"reference": "SD-000003", "agent": "mette", "body": "Which hall?", "replied_at": NOW},
        occurred_at=NOW + timedelta(minutes=6),
    )
    view.apply(ticket, note, reply, customer_reply(ticket, "Hall 2", NOW + timedelta(hours=1)))
    published: list[Message] = []

    async def publish(topic: str, message: Message) -> None:
        published.append(message)

    app = create_http_app(view.queries, publish, parse_tokens(TOKENS), lambda: NOW, blobs=blobs)
    app.state.view_ready = lambda: True
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        yield client, published, ticket, blobs


async def test_agents_read_the_whole_conversation_in_order(desk: Desk) -> None:
    client, _, ticket, _ = desk
    answer = await client.get("/tickets/SD-000003/conversation", headers=AGENT)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["custom_fields"] == [{"name": "version", "type": "version", "value": "4.2.1"}]
    messages = body["messages"]
    assert [message["kind"] for message in messages] == [
        "request",
        "internal_note",
        "agent_reply",
        "customer_reply",
    ]
    request = messages[0]
    assert request["body"] == ticket.data.body
    assert request["author"] == "Anna <anna@acme.example>"
    assert (request["channel"], request["message_id"]) == ("email", "<a1@acme.example>")
    assert request["attachments"][0]["filename"] == "fejl ø.png"
    assert messages[1]["body"] == NOTE


async def test_customers_never_see_internal_notes(desk: Desk) -> None:
    client, _, _, _ = desk
    conversation = await client.get("/tickets/SD-000003/conversation", headers=CUSTOMER)
    timeline = await client.get("/tickets/SD-000003/timeline", headers=CUSTOMER)
    assert conversation.status_code == timeline.status_code == 200
    kinds = [message["kind"] for message in conversation.json()["messages"]]
    assert kinds == ["request", "agent_reply", "customer_reply"]
    assert NOTE not in conversation.text
    assert NOTE not in timeline.text
    agents_timeline = await client.get("/tickets/SD-000003/timeline", headers=AGENT)
    assert NOTE in agents_timeline.text


async def test_an_attachment_downloads_as_an_attachment_for_those_who_see_it(
    desk: Desk,
) -> None:
    client, _, _, blobs = desk
    sha = blobs.put(SCREENSHOT)
    got = await client.get(f"/tickets/SD-000003/attachments/{sha}", headers=CUSTOMER)
    assert got.status_code == 200
    assert got.content == SCREENSHOT
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"] == "attachment; filename*=UTF-8''fejl%20%C3%B8.png"
    # A blob that is in the store but not on this ticket is not served through it.
    other = blobs.put(b"someone else's file")
    refused = await client.get(f"/tickets/SD-000003/attachments/{other}", headers=AGENT)
    assert refused.status_code == 404


async def test_agents_add_notes_and_replies_that_set_the_next_status(desk: Desk) -> None:
    client, published, ticket, _ = desk
    note = await client.post("/tickets/SD-000003/notes", json={"body": "call back"}, headers=AGENT)
    reply = await client.post(
        "/tickets/SD-000003/replies",
        json={"body": "Could you send a photo?", "next_status": "awaiting_reply"},
        headers=AGENT,
    )
    assert note.status_code == reply.status_code == 202
    added, replied = published
    assert isinstance(added, m.AddInternalNote)
    assert isinstance(replied, m.ReplyAsAgent)
    assert (added.subject_id, added.data.author) == (ticket.subject_id, "mette")
    assert replied.data.next_status == "awaiting_reply"
    refused = await client.post("/tickets/SD-000003/notes", json={"body": "x"}, headers=CUSTOMER)
    assert refused.status_code == 403
    customer = await client.post(
        "/tickets/SD-000003/replies", json={"body": "x", "next_status": "closed"}, headers=CUSTOMER
    )
    assert customer.status_code == 422
    assert len(published) == 2


async def test_a_submission_cannot_name_mail_or_blobs_of_its_own(desk: Desk) -> None:
    client, published, _, blobs = desk
    body = {
        "agreement_id": str(uuid.UUID(int=1)),
        "reporter_email": "anna@acme.example",
        "reporter_name": "Anna",
        "organisation": "Acme",
        "subject": "Printer",
        "body": "jams",
        "category": "incident",
        "impact": "one user",
        "urgency": "low",
        "attachments": [
            {"filename": "x", "content_type": "a/b", "size": 1, "sha256": blobs.put(b"x")}
        ],
    }
    answer = await client.post("/tickets", json=body, headers=AGENT)
    assert answer.status_code == 422
    assert published == []


async def test_set_aside_mail_is_listed_for_agents_with_its_raw_record(
    view: GatewayView,
    desk: Desk,
) -> None:
    client, _, _, blobs = desk
    raw = b"From: MAILER-DAEMON@x.example\r\nSubject: Undeliverable\r\n\r\nbounced"
    asides = []
    for n, reason in enumerate(("automatic", "unmatched", "automatic")):
        mail_id = uuid.uuid4()
        asides.append(mail_id)
        data = {
            "mail_id": mail_id,
            "reason": reason,
            "detail": "a delivery report",
            "sha256": blobs.put(raw),
            "sender": "mailer-daemon@x.example",
            "subject": f"Undeliverable {n}",
            "received_at": NOW + timedelta(minutes=n),
        }
        view.apply(m.MailSetAside.create(producer="intake", subject_id=mail_id, data=data))
    first = await client.get("/mail/set-aside?limit=2", headers=AGENT)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [mail["subject"] for mail in page["mail"]] == ["Undeliverable 2", "Undeliverable 1"]
    rest = await client.get(f"/mail/set-aside?limit=2&cursor={page['next_cursor']}", headers=AGENT)
    assert [mail["subject"] for mail in rest.json()["mail"]] == ["Undeliverable 0"]
    assert rest.json()["next_cursor"] is None
    automatic = await client.get("/mail/set-aside?reason=automatic", headers=AGENT)
    assert len(automatic.json()["mail"]) == 2
    got = await client.get(f"/mail/{asides[0]}/raw", headers=AGENT)
    assert (got.status_code, got.content) == (200, raw)
    assert got.headers["content-type"] == "message/rfc822"
    assert (await client.get("/mail/set-aside", headers=CUSTOMER)).status_code == 403
    assert (await client.get(f"/mail/{asides[0]}/raw", headers=CUSTOMER)).status_code == 403


async def test_agents_link_and_split_tickets_and_the_view_shows_links(
    view: GatewayView,
    desk: Desk,
) -> None:
    client, published, ticket, _ = desk
    other = opened(4)
    view.apply(other)
    linked = await client.post(
        "/tickets/SD-000003/links", json={"kind": "blocks", "other": "sd-000004"}, headers=AGENT
    )
    assert linked.status_code == 202, linked.text
    [link] = published
    assert isinstance(link, m.LinkTickets)
    assert (link.subject_id, link.data.other_ticket_id) == (ticket.subject_id, other.subject_id)
    unknown = await client.post(
        "/tickets/SD-000003/links", json={"kind": "blocks", "other": "SD-999999"}, headers=AGENT
    )
    assert unknown.status_code == 422
    assert "SD-999999" in unknown.text

    split = await client.post(
        "/tickets/SD-000003/split",
        json={"subject": "Printer 2 jams", "body": "And printer 2 jams too"},
        headers=AGENT,
    )
    assert split.status_code == 202
    command = published[-1]
    assert isinstance(command, m.SplitTicket)
    assert command.subject_id == ticket.subject_id
    assert split.json()["id"] == str(m.ticket_id_for_request(command.event_id))
    customer = await client.post(
        "/tickets/SD-000003/split", json={"subject": "x", "body": "y"}, headers=CUSTOMER
    )
    assert customer.status_code == 403

    # intake's answer, as the view gets it: both sides show the link
    for subject, mine, theirs, kind in (
        (ticket, "SD-000003", other, "blocks"),
        (other, "SD-000004", ticket, "blocked_by"),
    ):
        view.apply(
            m.TicketLinked.create(
                producer="intake",
                subject_id=subject.subject_id,
                data={
                    "reference": mine,
                    "kind": kind,
                    "other_ticket_id": theirs.subject_id,
                    "other_reference": theirs.data.reference,
                    "linked_by": "mette",
                    "linked_at": NOW,
                },
            )
        )
    shown = (await client.get("/tickets/SD-000004", headers=CUSTOMER)).json()
    assert shown["links"] == [
        {"kind": "blocked_by", "ticket_id": str(ticket.subject_id), "reference": "SD-000003"}
    ]
    timeline = (await client.get("/tickets/SD-000003/timeline", headers=AGENT)).json()
    assert "blocks SD-000004" in [entry["what"] for entry in timeline["entries"]]


async def test_contacts_registered_on_first_requests_are_listed(
    view: GatewayView,
    desk: Desk,
) -> None:
    client, _, _, _ = desk
    for email, organisation in (("anna@acme.example", "Acme"), ("jana@nordlicht.de", "Nordlicht")):
        view.apply(
            m.ContactRegistered.create(
                producer="intake",
                subject_id=uuid.uuid4(),
                data={
                    "email": email,
                    "name": email.split("@")[0].title(),
                    "organisation": organisation,
                    "agreement_id": uuid.UUID(int=1),
                    "channel": "email",
                    "first_reference": "SD-000003",
                    "registered_at": NOW,
                },
            )
        )
    everyone = (await client.get("/contacts", headers=AGENT)).json()
    assert [c["email"] for c in everyone] == ["anna@acme.example", "jana@nordlicht.de"]
    own = (await client.get("/contacts?organisation=Nordlicht", headers=CUSTOMER)).json()
    assert [c["email"] for c in own] == ["anna@acme.example"]  # a customer sees their own


async def test_failed_mail_is_listed_and_resent_on_request(view: GatewayView, desk: Desk) -> None:
    client, published, _, _ = desk
    notification = uuid.uuid4()
    data = {
        "notification_id": notification,
        "kind": "agent_reply",
        "recipient": "anna@acme.example",
        "subject_line": "Re: [SD-000003] Scanner 3 offline",
        "caused_by": uuid.uuid4(),
    }
    view.apply(
        m.NotificationFailed.create(
            producer="notifier",
            subject_id=notification,
            data={**data, "error": "SMTPRecipientsRefused: 550 mailbox full"},
        )
    )
    failed = (await client.get("/notifications", headers=AGENT)).json()
    assert [(f["notification_id"], f["error"]) for f in failed] == [
        (str(notification), "SMTPRecipientsRefused: 550 mailbox full")
    ]
    resent = await client.post(f"/notifications/{notification}/resend", headers=AGENT)
    assert resent.status_code == 202, resent.text
    [command] = published
    assert isinstance(command, m.ResendNotification)
    assert (command.subject_id, command.data.requested_by) == (notification, "mette")
    assert (
        await client.post(f"/notifications/{notification}/resend", headers=CUSTOMER)
    ).status_code == 403

    view.apply(m.NotificationSent.create(producer="notifier", subject_id=notification, data=data))
    assert (await client.get("/notifications", headers=AGENT)).json() == []
    sent = (await client.get("/notifications?outcome=sent", headers=AGENT)).json()
    assert [s["notification_id"] for s in sent] == [str(notification)]
    again = await client.post(f"/notifications/{notification}/resend", headers=AGENT)
    assert again.status_code == 409
    missing = await client.post(f"/notifications/{uuid.uuid4()}/resend", headers=AGENT)
    assert missing.status_code == 404


async def test_an_agreement_limited_to_portal_and_mail_refuses_a_phone_call(
    view: GatewayView, desk: Desk
) -> None:
    client, published, _, _ = desk
    basic = uuid.UUID("00000000-0000-4000-8000-0000000000ba")
    terms = provider_v_danish("Basis ApS")
    view.apply(
        m.AgreementRegistered.create(
            producer="billing", subject_id=basic, data={**terms, "channels": ["portal", "email"]}
        )
    )
    call = {
        "agreement_id": str(basic),
        "reporter_email": "mette@basis.dk",
        "reporter_name": "Mette",
        "organisation": "Basis ApS",
        "subject": "Login",
        "body": "Cannot log in",
        "category": "support",
        "impact": "low",
        "urgency": "low",
    }
    refused = await client.post("/tickets", json={**call, "channel": "phone"}, headers=AGENT)
    assert refused.status_code == 422
    assert "takes no phone requests: only portal, email" in refused.text
    taken = await client.post("/tickets", json={**call, "channel": "portal"}, headers=AGENT)
    assert taken.status_code == 202
    assert len(published) == 1


async def test_an_agent_files_a_set_aside_mail_and_the_list_names_its_ticket(
    view: GatewayView, desk: Desk
) -> None:
    client, published, _, blobs = desk
    mail_id = uuid.uuid4()
    data = {
        "mail_id": mail_id,
        "reason": "unmatched",
        "detail": "no agreement knows eve@unknown.example",
        "sha256": blobs.put(b"Subject: hi\r\n\r\nhi"),
        "sender": "eve@unknown.example",
        "subject": "hi",
        "received_at": NOW,
    }
    view.apply(m.MailSetAside.create(producer="intake", subject_id=mail_id, data=data))
    filing = {"agreement_id": str(uuid.UUID(int=1))}
    answer = await client.post(f"/mail/{mail_id}/file", json=filing, headers=AGENT)
    assert answer.status_code == 202, answer.text
    [command] = published
    assert isinstance(command, m.FileMail)
    assert (command.subject_id, command.data.filed_by) == (mail_id, "mette")
    assert answer.json()["id"] == str(m.ticket_id_for_request(mail_id))
    view.apply(
        m.MailFiled.create(
            producer="intake",
            subject_id=mail_id,
            data={
                "mail_id": mail_id,
                "ticket_id": m.ticket_id_for_request(mail_id),
                "reference": "SD-000009",
                "filed_as": "new_ticket",
                "filed_by": "mette",
            },
        )
    )
    [listed] = (await client.get("/mail/set-aside", headers=AGENT)).json()["mail"]
    assert listed["filed_reference"] == "SD-000009"
    again = await client.post(f"/mail/{mail_id}/file", json=filing, headers=AGENT)
    assert again.status_code == 409


async def test_the_portal_shows_a_customer_their_files_and_serves_them(
    view: GatewayView, desk: Desk
) -> None:
    client, _, ticket, blobs = desk
    hostile = blobs.put(b"<html>not run here</html>")
    view.apply(
        m.CustomerReplied.create(
            producer="intake",
            subject_id=ticket.subject_id,
            data={
                "reference": "SD-000003",
                "author_email": "anna@acme.example",
                "body": "Another file",
                "replied_at": NOW,
                "attachments": [
                    {
                        "filename": "<script>alert(1)</script>.html",
                        "content_type": "text/html",
                        "size": 25,
                        "sha256": hostile,
                    }
                ],
            },
        )
    )
    cookie = {"Cookie": "sd_portal=c-token"}
    page = await client.get("/portal/tickets/SD-000003", headers=cookie)
    assert page.status_code == 200
    sha = blobs.put(SCREENSHOT)
    assert f'href="/portal/tickets/SD-000003/attachments/{sha}"' in page.text
    assert "fejl ø.png" in page.text
    assert "<script>alert(1)</script>" not in page.text  # escaped, never markup
    assert NOTE not in page.text
    got = await client.get(f"/portal/tickets/SD-000003/attachments/{hostile}", headers=cookie)
    assert got.status_code == 200
    assert got.headers["content-disposition"].startswith("attachment;")  # never inline
    assert got.headers["x-content-type-options"] == "nosniff"
    missing = await client.get(f"/portal/tickets/SD-000003/attachments/{'1' * 64}", headers=cookie)
    assert missing.status_code == 404


async def test_a_customers_reply_is_theirs_and_names_its_channel(desk: Desk) -> None:
    client, published, ticket, _ = desk
    api = await client.post(
        "/tickets/SD-000003/replies", json={"body": "via API"}, headers=CUSTOMER
    )
    portal = await client.post(
        "/portal/tickets/SD-000003/replies",
        data={"body": "via the portal"},
        headers={"Cookie": "sd_portal=c-token"},
    )
    assert (api.status_code, portal.status_code) == (202, 303)
    by_api, by_portal = published
    assert isinstance(by_api, m.AddCustomerReply)
    assert isinstance(by_portal, m.AddCustomerReply)
    assert (by_api.data.author_name, by_api.data.channel) == ("Anna", "api")
    assert (by_portal.data.author_name, by_portal.data.channel) == ("Anna", "portal")
    assert by_portal.data.author_email == ticket.data.reporter_email  # no address of her own
