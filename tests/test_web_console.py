"""The console in a real headless Chromium against a real server on a loopback port: login, the
dashboard, browsing, a request chain, raw X12, audited reveal, roles and CSRF refusals.

Data: one demo run (nine requests answered by the clearinghouse simulator), copied for this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import func, select

from gateway.lifecycle import FileEvent, FileState, RequestState
from gateway.runtime.config import load_config
from gateway.store import Store, hash_member_id
from gateway.store import schema as s
from gateway.store.payloads import PayloadStore
from gateway.web import figures, users
from tests.lifecycle_support import rewind_request
from tests.web_support import PASSWORD, Server, chromium, demo_copy, require_browser, serve

CANARY = "CANARYTEST"  # the subscriber's last name in the demo's outpatient MRI request (AU-0001)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_browser()
    config = demo_copy(tmp_path_factory, "console")
    store = Store.open(load_config(config).database_url())
    users.add_user(store, "alice", "operator", PASSWORD)
    users.add_user(store, "vic", "viewer", PASSWORD)
    store.close()
    with serve(config) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture
def page(browser: Any, server: Server) -> Any:
    """The browser, logged out (no cookies) and on the login page."""
    browser.get(server.url + "/console/login")
    browser.delete_all_cookies()
    browser.get(server.url + "/console/login")
    return browser


def follow(driver: Any, element: Any) -> None:
    """Click a link or submit button and wait until the next page has replaced this one."""
    old = driver.find_element("tag name", "html")
    element.click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old))


def login(driver: Any, server: Server, name: str, password: str = PASSWORD) -> None:
    driver.get(server.url + "/console/login")
    driver.find_element("id", "name").send_keys(name)
    driver.find_element("id", "password").send_keys(password)
    follow(driver, driver.find_element("id", "login"))


def body(driver: Any) -> str:
    return str(driver.find_element("tag name", "body").text)


def tracking_of(server: Server, reference: str) -> str:
    with server.store.read() as tx:
        rows = tx.requests.by_reference_hash(hash_member_id(reference, server.config.member_hash_key()))
    assert len(rows) == 1
    return rows[0].tracking_number


def audit_count(server: Server) -> int:
    with server.store.read() as tx:
        return int(tx.conn.execute(select(func.count()).select_from(s.phi_audit)).scalar_one())


def post_form(driver: Any, action: str, fields: dict[str, str]) -> None:
    """Submit a form the page does not offer (as a forged or hand-made request would)."""
    old = driver.find_element("tag name", "html")
    driver.execute_script(
        """
        const f = document.createElement('form');
        f.method = 'post'; f.action = arguments[0];
        for (const [k, v] of Object.entries(arguments[1])) {
          const i = document.createElement('input');
          i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
        }
        document.body.appendChild(f); f.submit();
        """,
        action,
        fields,
    )
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old))


def csrf_of(driver: Any) -> str:
    return str(driver.find_element("css selector", "form.who input[name=csrf]").get_attribute("value"))


def test_login_is_required_and_a_wrong_password_is_refused(page: Any, server: Server) -> None:
    """Pages redirect to the login form; a wrong password shows an error; the right one the dashboard."""
    page.get(server.url + "/console/transactions")
    assert page.current_url.endswith("/console/login")
    login(page, server, "alice", PASSWORD + "-wrong")
    assert page.find_element("id", "login-error").text == "wrong name or password"
    login(page, server, "alice")
    assert page.current_url.endswith("/console/")
    text = body(page)
    assert "sim-clearinghouse" in text
    assert page.find_element("id", "acceptance").text == "100.0%"
    assert "alice (operator)" in text


def test_dashboard_shows_queues_turnaround_and_authorizations(page: Any, server: Server) -> None:
    """The dashboard's figures come from the demo's store: answered requests, decisions, turnaround."""
    login(page, server, "alice")
    queues = page.find_element("id", "queues").text
    with server.store.read() as tx:
        counts = figures.requests_by_state(tx)  # other tests of this module move some requests
    assert sum(n for _kind, _state, n in counts) == 9
    for kind, state, n in counts:
        assert f"{kind} {state} {n}" in queues
    turnaround = page.find_element("id", "turnaround").text
    assert "278 6" in turnaround
    assert "denied 1" in turnaround
    assert page.find_element("id", "pended").text.endswith("none")  # the demo's pended MRI was approved
    listed = [a.text for a in page.find_elements("css selector", "#expiring td:first-child a")]
    with server.store.read() as tx:
        dated = {
            a.tracking_number for a in tx.results.find_authorizations(limit=100) if a.effective_to is not None
        }
    assert set(listed) <= dated


def test_browse_filters_by_type_and_client_reference(page: Any, server: Server) -> None:
    """The transaction browser filters the log by type and finds a request by the billing reference."""
    login(page, server, "alice")
    page.get(server.url + "/console/transactions?type=278")
    rows = page.find_elements("css selector", "#log tr")[1:]
    assert rows
    assert all(" 278" in r.find_elements("tag name", "td")[2].text for r in rows)
    page.get(server.url + "/console/transactions")
    page.find_element("id", "ref").send_keys("AU-0001")
    follow(page, page.find_element("id", "filter"))
    table = page.find_element("id", "requests").text
    assert tracking_of(server, "AU-0001") in table
    assert "C********T" in table
    assert CANARY not in body(page)


def test_number_search_opens_the_request_chain(page: Any, server: Server) -> None:
    """A tracking number in the browser leads to the chain: request, its 999, its 278 answers, in loops,
    codes decoded."""
    login(page, server, "alice")
    tracking = tracking_of(server, "AU-0001")
    page.get(server.url + "/console/transactions")
    page.find_element("id", "number").send_keys(tracking)
    follow(page, page.find_element("id", "filter"))
    assert page.current_url.endswith(f"/console/requests/{tracking}")
    text = body(page)
    assert page.find_element("id", "tracking").text == tracking
    assert "authorization: approved" in text
    assert "999 A (accepted) in file" in text  # the clearinghouse's acknowledgment, decoded
    assert "A1 (certified in total)" in text  # the payer's HCR01, decoded
    assert "response 278" in text  # the pend and the final answer
    sets = page.find_elements("css selector", "section.set")
    assert len(sets) >= 3
    segments = page.find_element("css selector", "table.segments").text
    assert "2010C" in segments
    assert "NM1*IL*1*C********T*A***A" in segments
    assert CANARY not in page.page_source


def test_reveal_writes_the_audit_row_and_shows_the_names(page: Any, server: Server) -> None:
    """Reveal is a POST that records console:alice in the PHI audit before the unmasked page is sent."""
    login(page, server, "alice")
    tracking = tracking_of(server, "AU-0001")
    page.get(server.url + f"/console/requests/{tracking}")
    before = audit_count(server)
    follow(page, page.find_element("id", "reveal"))
    assert page.find_element("id", "revealed").is_displayed()
    assert CANARY in body(page)
    with server.store.read() as tx:
        rows = tx.audit.list_reveals(limit=1)
    assert audit_count(server) == before + 1
    assert (rows[0].os_user, rows[0].action, rows[0].subject) == (
        "console:alice",
        "console reveal",
        f"tracking:{tracking}",
    )
    page.get(server.url + f"/console/requests/{tracking}")  # a plain GET is masked again
    assert CANARY not in body(page)


def test_raw_x12_is_masked_until_revealed(page: Any, server: Server) -> None:
    """Raw X12 on demand: segments with PHI masked; the exact bytes only after an audited POST."""
    login(page, server, "alice")
    tracking = tracking_of(server, "AU-0001")
    page.get(server.url + f"/console/requests/{tracking}")
    follow(page, page.find_elements("partial link text", "raw")[0])
    masked = page.find_element("id", "raw-text").text
    assert "ST*278*" in masked
    assert CANARY not in masked
    file_id = int(page.current_url.split("/files/")[1].split("/")[0])
    with server.store.read() as tx:
        real_name = tx.files.get(file_id).name
    assert real_name not in page.find_element("tag name", "h1").text, "a file name is PHI until revealed"
    before = audit_count(server)
    follow(page, page.find_element("id", "reveal"))
    raw = page.find_element("id", "raw-text").text
    assert raw.startswith("ISA*")
    assert CANARY in raw
    assert audit_count(server) == before + 1


def test_a_viewer_is_refused_an_operator_action(page: Any, server: Server) -> None:
    """A viewer sees no resend button and a forged resend POST (with a valid token) is refused."""
    tracking = tracking_of(server, "AU-0006")
    with server.store.begin() as tx:
        rewind_request(tx, tracking, RequestState.OVERDUE)
    login(page, server, "vic")
    page.get(server.url + f"/console/requests/{tracking}")
    assert not page.find_elements("id", "resend")
    post_form(page, f"/console/requests/{tracking}/resend", {"csrf": csrf_of(page)})
    assert "this action needs the operator role" in body(page)
    with server.store.read() as tx:
        req = tx.requests.get_by_tracking(tracking)
    assert req is not None
    assert req.state == "overdue"


def test_an_operator_resends_once(page: Any, server: Server) -> None:
    """An operator's resend moves an overdue request back to new, recorded as console:alice; a second
    resend is refused (the same idempotent action as the CLI)."""
    tracking = tracking_of(server, "AU-0005")
    with server.store.begin() as tx:
        rewind_request(tx, tracking, RequestState.OVERDUE)
    login(page, server, "alice")
    page.get(server.url + f"/console/requests/{tracking}")
    token = csrf_of(page)
    follow(page, page.find_element("id", "resend"))
    assert "is new again (was overdue)" in page.find_element("id", "message").text
    with server.store.read() as tx:
        req = tx.requests.get_by_tracking(tracking)
        assert req is not None
        assert req.state == "new"
        history = tx.audit.history("request", req.id)
    assert history[-1].detail is not None
    assert history[-1].detail["operator"] == "console:alice"
    post_form(page, f"/console/requests/{tracking}/resend", {"csrf": token})
    assert "only rejected, invalid, overdue requests are resent" in page.find_element("id", "message").text


def test_a_post_without_the_csrf_token_is_refused(page: Any, server: Server) -> None:
    """Reveal without a token, or with another session's, is refused and writes no audit row."""
    login(page, server, "alice")
    tracking = tracking_of(server, "AU-0001")
    page.get(server.url + f"/console/requests/{tracking}")
    before = audit_count(server)
    post_form(page, f"/console/requests/{tracking}/reveal", {})
    assert "refused: missing or wrong CSRF token" in body(page)
    page.get(server.url + f"/console/requests/{tracking}")
    post_form(page, f"/console/requests/{tracking}/reveal", {"csrf": "x" * 43})
    assert "refused: missing or wrong CSRF token" in body(page)
    assert audit_count(server) == before
    assert CANARY not in body(page)


def test_logout_ends_the_session(page: Any, server: Server) -> None:
    """After logging out the old cookie no longer opens a page."""
    login(page, server, "alice")
    cookie = page.get_cookie("x12gw_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    follow(page, page.find_element("css selector", "form.who button"))
    assert page.current_url.endswith("/console/login")
    page.add_cookie({"name": "x12gw_session", "value": cookie["value"], "path": "/console"})
    page.get(server.url + "/console/")
    assert page.current_url.endswith("/console/login")


def test_an_operator_reprocesses_a_quarantined_file(page: Any, server: Server) -> None:
    """A quarantined received file offers Reprocess to an operator; it goes back to downloaded, once."""
    data = b"ISA*not really*~"
    sha, path = PayloadStore(server.config.folders.payloads).put(data)
    with server.store.begin() as tx:
        f = tx.files.record(
            direction="in",
            partner="sim-clearinghouse",
            name="broken.x12",
            sha256=sha,
            size=len(data),
            payload_path=str(path),
            state=FileState.DOWNLOADED,
        )
        tx.files.transition(f.id, FileEvent.QUARANTINE, reason="test: unreadable")
    login(page, server, "vic")
    page.get(server.url + f"/console/files/{f.id}")
    assert not page.find_elements("id", "reprocess")
    page.delete_all_cookies()
    login(page, server, "alice")
    page.get(server.url + f"/console/files/{f.id}")
    follow(page, page.find_element("id", "reprocess"))
    assert "is downloaded again" in page.find_element("id", "message").text
    with server.store.read() as tx:
        assert tx.files.get(f.id).state == "downloaded"
    page.get(server.url + f"/console/files/{f.id}")
    assert not page.find_elements("id", "reprocess")
