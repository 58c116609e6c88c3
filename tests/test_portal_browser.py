"""The customer portal in a real browser (headless Chromium, Debian's package) against the
real stack: a customer logs in with their token, submits a request, sees it registered
with its reference, reads the agent's answer and replies; the reply reaches the ticket."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from tests.conftest import StackFactory
from tests.desk import agreement_in_view

from servicedesk_runtime.tansu import EmbeddedBroker
from servicedesk_stack.demo import FIRST_AGREEMENT_ID
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
AGENT = {"Authorization": "Bearer agent-token"}


@pytest.fixture
def browser(real_command: Callable[[str, str], str]) -> Iterator[object]:
    chromium = real_command("chromium", "chromium")
    driver = real_command("chromedriver", "chromium-driver")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    session = webdriver.Chrome(service=webdriver.ChromeService(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def test_a_customer_submits_follows_and_answers_a_request_in_the_browser(
    make_stack: StackFactory, broker: EmbeddedBroker, browser: object
) -> None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    stack = make_stack()
    stack.start()
    stack.wait_ready()
    gateway = f"http://127.0.0.1:{stack.config.gateway_port}"
    agreement_in_view(broker.bootstrap, gateway, FIRST_AGREEMENT_ID)

    def text() -> str:
        """The page's text; empty while a click's navigation replaces the page
        (the old body is stale, or the new document has no body yet)."""
        try:
            return str(browser.find_element(By.TAG_NAME, "body").text)
        except (StaleElementReferenceException, NoSuchElementException):
            return ""

    def shows(words: str) -> bool:
        return words in text()

    def click(selector: str, then_shows: str) -> None:
        browser.find_element(By.CSS_SELECTOR, selector).click()
        wait_for(lambda: shows(then_shows), 30, f"{then_shows!r} after the click")

    browser.get(f"{gateway}/portal")
    browser.find_element(By.NAME, "token").send_keys("wrong-token")
    click("form button", then_shows="not a customer's token")
    browser.find_element(By.NAME, "token").send_keys("customer-token")
    click("form button", then_shows="No requests yet")

    browser.get(f"{gateway}/portal/tickets/SD-999999")  # nobody's, or someone else's
    wait_for(lambda: shows("No request SD-999999"), 30, "a plain 'no such request'")
    browser.get(f"{gateway}/portal")
    subject = f"Scanner {uuid.uuid4().hex[:6]} offline"
    browser.find_element(By.NAME, "subject").send_keys(subject)
    browser.find_element(By.NAME, "body").send_keys("Hall 2 <b>cannot</b> scan")
    browser.find_element(By.NAME, "reporter_email").send_keys("anna@acme.example")
    browser.find_element(By.CSS_SELECTOR, "form[action='/portal/requests'] button").click()
    wait_for(lambda: "SD-" in browser.title, 60, "the request registered (the page refreshes)")
    reference = browser.title.split(" ")[0]
    # Shown as typed, never as markup.
    wait_for(lambda: shows("Hall 2 <b>cannot</b> scan"), 30, "the request as typed")

    answer = httpx.post(
        f"{gateway}/tickets/{reference}/replies", json={"body": "Restart it, please"}, headers=AGENT
    )
    assert answer.status_code == 202

    def answered() -> bool:
        browser.refresh()
        return "Restart it, please" in text()

    wait_for(answered, 60, "the agent's answer on the ticket page")
    browser.find_element(By.NAME, "body").send_keys("Restarted: it works")
    click("form button[type=submit]:not(.quiet)", then_shows="Your reply was sent")

    def reply_applied() -> bool:
        ticket = httpx.get(f"{gateway}/tickets/{reference}", headers=AGENT).json()
        return bool(ticket["customer_replies"] == 1)

    wait_for(reply_applied, 60, "the customer's reply on the ticket")
    browser.refresh()
    wait_for(lambda: shows("Restarted: it works"), 30, "the reply in the conversation")
