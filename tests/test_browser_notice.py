"""In headless Chromium, on a 360-px phone screen: the notice reads well, in French, without sideways scrolling."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import MISSING, available, chromium, serve
from tests.screenshot_notice import WIDTH, phone_screen

pytestmark = pytest.mark.skipif(not available(), reason=MISSING)

# WCAG 2.1 AA: 4.5:1 for body text.
CONTRAST = 4.5
# Every element holding words, with its font size in CSS pixels and its contrast on the page's background.
READING = """
const luminance = rgb => {
  const [r, g, b] = rgb.match(/[\\d.]+/g).slice(0, 3).map(Number).map(v => v / 255)
    .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const background = luminance(getComputedStyle(document.body).backgroundColor);
return [...document.querySelectorAll('main p, main li, main dt, main dd, main a, main h1, main h2, main h3')]
  .map(el => {
    const style = getComputedStyle(el), ink = luminance(style.color);
    const ratio = (Math.max(ink, background) + 0.05) / (Math.min(ink, background) + 0.05);
    return [el.tagName, parseFloat(style.fontSize), ratio, el.textContent.trim().slice(0, 40)];
  });
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        phone_screen(driver)
        yield driver


@pytest.fixture
def site(app) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.mark.parametrize(("query", "lang"), [("", "fr"), ("?lang=en", "en")])
def test_the_notice_fits_a_phone_screen_without_sideways_scrolling(site, browser, query: str, lang: str) -> None:
    browser.get(f"{site}/notice/presidentielle-2027{query}")
    assert browser.execute_script("return document.documentElement.lang") == lang
    assert browser.execute_script("return window.innerWidth") == WIDTH
    assert browser.execute_script("return document.documentElement.scrollWidth") <= WIDTH
    widest = browser.execute_script(
        "return Math.max(...[...document.querySelectorAll('main *')].map(e => e.getBoundingClientRect().right))")
    assert widest <= WIDTH


def test_the_notice_has_one_title_and_headings_in_order(site, browser) -> None:
    browser.get(f"{site}/notice/presidentielle-2027")
    levels = browser.execute_script(
        "return [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].map(h => Number(h.tagName[1]))")
    assert levels.count(1) == 1 and levels[0] == 1
    assert all(later <= earlier + 1 for earlier, later in zip(levels, levels[1:], strict=False)), levels
    titles = browser.execute_script("return [...document.querySelectorAll('h2')].map(h => h.textContent)")
    assert "Vos droits et comment les exercer" in titles
    assert "Transparence de la publicité politique" in titles


def test_the_notice_is_readable_its_own_stylesheet_applied(site, browser) -> None:
    browser.get(f"{site}/notice/presidentielle-2027")
    # The stylesheet loaded under the page's policy: the column is the notice's, not the browser's default.
    assert browser.execute_script("return getComputedStyle(document.querySelector('main')).maxWidth") == "672px"
    items = browser.execute_script(READING)
    assert len(items) > 40
    small = [item for item in items if item[1] < 14]
    faint = [item for item in items if item[2] < CONTRAST]
    assert not small, small
    assert not faint, faint
    body = browser.execute_script(
        "return parseFloat(getComputedStyle(document.querySelector('main section p')).fontSize)")
    assert body >= 16
