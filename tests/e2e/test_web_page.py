"""The web page end to end in Debian's Chromium: chat, rate, correct, compare two versions, pick one."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs it (scripts/install_browser.sh)"
    url, key, _ = server
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        tab = browser.new_page()
        tab.set_default_timeout(30_000)
        tab.goto(url + "/")
        tab.fill("#key", key)
        tab.dispatch_event("#key", "change")
        tab.wait_for_function("document.querySelectorAll('#model-a option').length >= 3")
        yield tab
        browser.close()


def feedback_rows(server):
    from tuneloop.store.feedback import corrections, preferences, rating_counts

    conn = server[2].state.store.connection()
    return rating_counts(conn, project="triage"), corrections(conn, project="triage"), preferences(conn, project="triage")


def test_chat_rate_and_correct(page, server):
    page.select_option("#model-a", "triage:v1")
    page.fill("#prompt", "what colour is the plum?")
    page.click("#send")
    answer = page.locator("#pane-a .turn.assistant").first
    try:
        answer.wait_for()
    except Exception:
        raise AssertionError(f"status: {page.inner_text('#status')!r}; html: {page.inner_html('#pane-a')[:500]}")
    page.locator("#pane-a .actions button", has_text="👎").first.click()
    page.locator("#pane-a .actions button.done").first.wait_for()
    page.locator("#pane-a .actions button", has_text="correct").first.click()
    page.fill("#pane-a form.correction textarea", "purple")
    page.click("#pane-a form.correction button")
    page.get_by_text("correction saved").wait_for()

    counts, fixes, _ = feedback_rows(server)
    assert any(c.version_id == "triage:v1" and c.down >= 1 for c in counts)
    assert "purple" in [c.correction for c in fixes]


def test_compare_two_versions_and_pick_the_better(page, server):
    page.check("#compare")
    page.select_option("#model-a", "triage:v1")
    page.select_option("#model-b", "triage:v2")
    page.fill("#prompt", "what colour is the banana?")
    page.click("#send")
    page.locator("#pane-b .turn.assistant").first.wait_for()
    assert page.locator("#pane-a .name").inner_text() == "triage:v1"
    page.get_by_role("button", name="right is better ▶").click()
    page.get_by_text("preference saved").wait_for()

    _, _, chosen = feedback_rows(server)
    assert [(p.chosen_version, p.rejected_version) for p in chosen][-1] == ("triage:v2", "triage:v1")
