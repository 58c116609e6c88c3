"""The AsyncAPI document's topic of each message type (`servicedesk_contracts.asyncapi`)
is where the code publishes it: every place in the services that names a topic and a
message type together (the gateway's `send(request, topics.INBOUND, m.FileMail, ...)`, a
relay's `return topics.TRIAGE, message_for(event, m.TicketTriaged, ...)`) agrees with it."""

from __future__ import annotations

import ast
from pathlib import Path

from servicedesk_contracts import messages as m
from servicedesk_contracts import topics
from servicedesk_contracts.asyncapi import DEAD_LETTER_HEADERS, DEAD_LETTER_REQUIRED, topic_of

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/*/src/**/*.py")])


def _topic(node: ast.AST) -> str | None:
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in {"topics", "topic_names"}
        and isinstance(getattr(topics, node.attr, None), str)
    ):
        return str(getattr(topics, node.attr))
    return None


def _message(node: ast.AST) -> str | None:
    """`m.X`, `m.X(...)`, `m.X.create(...)`, or `m.X` as an argument of a call."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id == "m" and isinstance(getattr(m, node.attr, None), type):
            model = getattr(m, node.attr)
            return node.attr if model in m.ALL_MESSAGES else None
        return None
    if isinstance(node, ast.Attribute):
        return _message(node.value)
    if isinstance(node, ast.Call):
        found = {_message(node.func)} | {_message(arg) for arg in node.args}
        found.discard(None)
        return found.pop() if len(found) == 1 else None
    return None


def _table(tree: ast.Module) -> list[str]:
    """The message types of a module's `_MESSAGES` table (domain event -> message type)."""
    return [
        name
        for node in tree.body
        if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Dict)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name) and target.id == "_MESSAGES"
        for value in node.value.values
        if (name := _message(value))
    ]


def _from_table(node: ast.AST) -> bool:
    """`message_for(event, message, ...)`: the type looked up in `_MESSAGES`."""
    return isinstance(node, ast.Call) and any(
        isinstance(arg, ast.Name) and arg.id == "message" for arg in node.args
    )


def published() -> set[tuple[str, str, str]]:
    """(topic, message type, file) for each tuple or call naming one topic and one type, and
    for each type in a `_MESSAGES` table, on the topic its lookup is returned with."""
    pairs = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        relative = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            parts = (
                node.elts
                if isinstance(node, ast.Tuple)
                else node.args
                if isinstance(node, ast.Call)
                else []
            )
            found_topics = [topic for part in parts if (topic := _topic(part))]
            found_messages = [name for part in parts if (name := _message(part))]
            if len(found_topics) == 1 and any(_from_table(part) for part in parts):
                found_messages += _table(tree)
            if len(found_topics) == 1:
                pairs |= {(found_topics[0], name, relative) for name in found_messages}
    return pairs


def test_messages_are_published_on_the_topic_the_asyncapi_document_names() -> None:
    pairs = published()
    wrong = sorted(
        (name, topic, where) for topic, name, where in pairs if topic_of(getattr(m, name)) != topic
    )
    assert not wrong, f"published on another topic than asyncapi.CHANNELS says: {wrong}"
    seen = {name for _, name, _ in pairs}
    assert {"FileMail", "RegisterAgreement", "TicketTriaged", "SlaBreached", "AgentReplied"} <= seen


def test_dead_letter_headers_are_the_ones_the_runtime_writes() -> None:
    source = ROOT / "libs/runtime/src/servicedesk_runtime/kafka.py"
    function = next(
        node
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.AsyncFunctionDef) and node.name == "dead_letter"
    )
    written = {
        node.elts[0].value
        for node in ast.walk(function)
        if isinstance(node, ast.Tuple)
        and len(node.elts) == 2
        and isinstance(node.elts[0], ast.Constant)
        and isinstance(node.elts[0].value, str)
    }
    assert written == set(DEAD_LETTER_HEADERS)
    assert set(DEAD_LETTER_REQUIRED) < written
