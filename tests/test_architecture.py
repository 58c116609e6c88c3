"""The shape the architecture promises: services share only contracts and the runtime."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICE_PACKAGES = {
    path.name: path
    for path in ROOT.glob("services/*/src/servicedesk_*")
    if path.is_dir() and "." not in path.name  # not the *.egg-info of editable installs
}


def imported_modules(package: Path) -> set[str]:
    return set().union(*(imported_modules_of_file(f) for f in package.rglob("*.py")))


def test_there_are_six_services() -> None:
    assert sorted(SERVICE_PACKAGES) == sorted(
        f"servicedesk_{name}"
        for name in ("intake", "triage", "sla_timer", "billing", "notifier", "gateway")
    )


def test_services_never_import_each_other() -> None:
    for name, package in SERVICE_PACKAGES.items():
        others = set(SERVICE_PACKAGES) - {name}
        assert not imported_modules(package) & others, f"{name} imports another service"


def test_the_runtime_knows_no_service() -> None:
    runtime = imported_modules(ROOT / "libs/runtime/src/servicedesk_runtime")
    assert not runtime & set(SERVICE_PACKAGES)


def test_domain_modules_do_no_io() -> None:
    forbidden = {"aiokafka", "psycopg", "sqlite3", "smtplib", "httpx", "fastapi", "socket"}
    for package in SERVICE_PACKAGES.values():
        domain = package / "domain.py"
        if domain.exists():
            modules = imported_modules_of_file(domain)
            assert not modules & forbidden, f"{domain} imports {modules & forbidden}"


def imported_modules_of_file(source: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    return modules
