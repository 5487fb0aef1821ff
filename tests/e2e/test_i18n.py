"""Languages in real Chromium: a Russian browser gets a Russian client (no English string of the string table on the
pre-join and room screens, nor on the organiser page), the switch changes language at once and is remembered, and
dates follow the language."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import DESKTOP, BrowserSession, LiveServer
from tests.e2e.pages import JOIN_TIMEOUT_MS, MEDIA_TIMEOUT_MS, wait_media_flowing, wait_until
from tests.helpers import ADMIN_TOKEN, add_participant, create_workshop

pytestmark = pytest.mark.browser

# Every English string of the table that shows on the page: text nodes, and the names and hints that assistive
# technology reads (aria-label, title, placeholder). A string is split at its {placeholders}; each piece with a
# word in it must not appear as a whole word. The brand name is the same in every language.
_ENGLISH_ON_PAGE = """
async () => {
  const en = (await import("/static/i18n/en.js")).default;
  const brand = new Set(["app_name"]);
  const pieces = [];
  for (const [key, text] of Object.entries(en)) {
    if (brand.has(key)) continue;
    for (const part of text.split(/\\{\\w+\\}/)) {
      const piece = part.replace(/^[\\s:·,.;()…\\u2013-]+|[\\s:·,.;()…\\u2013-]+$/g, "");
      if (/[A-Za-z]{2,}/.test(piece)) pieces.push([key, piece]);
    }
  }
  const texts = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest("script, style, select.lang-switch")) continue;
    texts.push(node.textContent);
  }
  for (const el of document.body.querySelectorAll("[aria-label], [title], [placeholder]")) {
    if (el.closest("select.lang-switch")) continue; // each language named in itself
    for (const name of ["aria-label", "title", "placeholder"]) {
      if (el.getAttribute(name)) texts.push(el.getAttribute(name));
    }
  }
  const haystack = texts.join("\\n");
  const escape = (s) => s.replace(/[.*+?^${}()|[\\]\\\\]/g, "\\\\$&");
  return pieces
    .filter(([, piece]) => new RegExp(`(^|[^A-Za-z])${escape(piece)}($|[^A-Za-z])`).test(haystack))
    .map(([key, piece]) => `${key}: ${piece}`);
}
"""


async def _russian_page(browser: BrowserSession, name: str) -> Page:
    """A page of a browser whose language is Russian (navigator.languages and Accept-Language)."""
    context = await browser.browser.new_context(viewport=DESKTOP, locale="ru-RU")
    browser.contexts.append(context)
    page = await context.new_page()
    log = browser.logs.setdefault(name, [])
    page.on("console", lambda msg: log.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: browser.page_errors.append(f"{name}: {exc}"))
    return page


async def _english_left(page: Page) -> list[str]:
    found: list[str] = await page.evaluate(_ENGLISH_ON_PAGE)
    return found


async def _join_in_russian(page: Page, person: dict[str, Any]) -> None:
    await page.goto(person["join_url"])
    await expect(page.locator("#pre-name")).to_have_text(person["display_name"], timeout=JOIN_TIMEOUT_MS)
    await page.wait_for_function(
        "() => { const v = document.querySelector('#preview'); return v && v.videoWidth > 0; }",
        timeout=JOIN_TIMEOUT_MS,
    )
    await expect(page.locator("#mic-select option")).not_to_have_count(0)
    await page.get_by_role("button", name="Войти", exact=True).click()
    await page.wait_for_function("() => window.roundtable.state().joined", timeout=JOIN_TIMEOUT_MS)


async def test_russian_client_has_no_english_on_prejoin_and_room(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client, title="Водные ресурсы Прикаспия")
    anna = await add_participant(client, workshop["id"], display_name="Анна Перейра", country="PT")
    boris = await add_participant(client, workshop["id"], display_name="Борис Окафор", country="NG")
    page_a = await _russian_page(browser, "anna")
    page_b = await _russian_page(browser, "boris")

    # Pre-join: chosen from the browser's language.
    await page_a.goto(anna["join_url"])
    await expect(page_a.locator("#pre-name")).to_have_text("Анна Перейра", timeout=JOIN_TIMEOUT_MS)
    # Every key has its Russian (a missing one would fall back to English).
    missing = await page_a.evaluate(
        """async () => {
            const en = (await import("/static/i18n/en.js")).default;
            const ru = (await import("/static/i18n/ru.js")).default;
            return Object.keys(en).filter((key) => !(key in ru));
        }"""
    )
    assert missing == [], f"no Russian for {missing}"
    await expect(page_a.locator("html")).to_have_attribute("lang", "ru")
    await expect(page_a.get_by_role("heading", name="Готовы войти?")).to_be_visible()
    await page_a.wait_for_function(
        "() => { const v = document.querySelector('#preview'); return v && v.videoWidth > 0; }",
        timeout=JOIN_TIMEOUT_MS,
    )
    await expect(page_a.locator("#mic-select option")).not_to_have_count(0)
    assert await _english_left(page_a) == []
    await page_a.screenshot(path=str(browser.output_dir / "prejoin-russian.png"))

    # The room, with someone else in it, the reactions open, muted and with a raised hand.
    await page_a.get_by_role("button", name="Войти", exact=True).click()
    await page_a.wait_for_function("() => window.roundtable.state().joined", timeout=JOIN_TIMEOUT_MS)
    await _join_in_russian(page_b, boris)
    await wait_media_flowing(page_a, {boris["id"]})
    await page_a.get_by_role("button", name="Выключить микрофон").click()
    await page_a.get_by_role("button", name="Поднять руку").click()
    await page_a.get_by_role("button", name="Реакция").click()
    await expect(page_a.get_by_role("toolbar", name="Реакции")).to_be_visible()
    await wait_until(
        page_a,
        "(id) => !!document.querySelector(`.tile[data-peer-id='${id}'] .tile-quality[title]`)",
        boris["id"],
        what="the connection-quality indicator on Boris's tile",
        timeout_ms=MEDIA_TIMEOUT_MS,
    )
    tile_of_anna = page_b.locator(f'.tile[data-peer-id="{anna["id"]}"]')
    await expect(tile_of_anna).to_contain_text("Рука поднята")
    await expect(tile_of_anna).to_contain_text("Без звука")
    await expect(page_b.locator("#people-list")).to_contain_text("Португалия")
    for page in (page_a, page_b):
        assert await _english_left(page) == []
    shot = browser.output_dir / "room-russian.png"
    await page_a.screenshot(path=str(shot))

    assert browser.page_errors == []


async def test_language_switch_applies_at_once_and_is_remembered(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    anna = await add_participant(client, workshop["id"], display_name="Anna Petrova", country="KZ")
    page = await _russian_page(browser, "anna")
    await _join_in_russian(page, anna)
    await expect(page.get_by_role("button", name="Выключить микрофон")).to_be_visible()

    # Switched in the room: the controls, the side panel and the people list change at once; the call goes on.
    await page.locator("#room .lang-switch").select_option("en")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.get_by_role("button", name="Mute your microphone")).to_be_visible()
    await expect(page.get_by_role("tab", name="People")).to_be_visible()
    await expect(page.locator("#people-list")).to_contain_text("Kazakhstan")
    assert (await page.evaluate("() => window.roundtable.state()"))["joined"]

    # Remembered: a new visit in the same browser starts in English although the browser says Russian.
    await page.reload()
    await expect(page.get_by_role("button", name="Join", exact=True)).to_be_visible(timeout=JOIN_TIMEOUT_MS)
    await expect(page.get_by_role("heading", name="Ready to join?")).to_be_visible()
    assert await page.locator("#prejoin .lang-switch").input_value() == "en"

    # Times follow the language: the chat clock of a Russian page is the Russian format.
    await page.locator("#prejoin .lang-switch").select_option("ru")
    await expect(page.get_by_role("button", name="Войти", exact=True)).to_be_visible()
    formatted = await page.evaluate(
        """async () => {
            const strings = await import("/static/strings.js");
            const iso = "2026-12-10T15:04:00Z";
            const expected = new Date(iso).toLocaleString("ru", { dateStyle: "medium", timeStyle: "short" });
            return [strings.formatDateTime(iso), expected];
        }"""
    )
    assert formatted[0] == formatted[1], formatted

    assert browser.page_errors == []


async def test_organiser_page_in_russian_with_russian_dates(live_server: LiveServer, browser: BrowserSession) -> None:
    await create_workshop(live_server.client, title="Семинар")
    page = await _russian_page(browser, "organiser")
    await page.goto(f"{live_server.base_url}/admin")
    await expect(page.get_by_role("button", name="Войти")).to_be_visible()
    assert await _english_left(page) == []
    await page.get_by_label("Токен администратора").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Войти").click()
    await expect(page.get_by_role("heading", name="Семинары")).to_be_visible()
    assert await _english_left(page) == []
    # The workshop's dates, formatted the Russian way (the months in Russian).
    listed = await page.locator(".workshop-list li .hint").first.text_content()
    months = ("янв", "фев", "мар", "апр", "мая", "июн", "июл", "авг", "сен", "окт", "ноя", "дек")
    assert listed and any(month in listed for month in months), listed

    assert browser.page_errors == []
