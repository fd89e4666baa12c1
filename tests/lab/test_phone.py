"""The lab on a phone (390x844, touch) and each hidden neuron's picture, in a real Chromium.

Same set-up as :mod:`tests.lab.test_browser` (its fixtures and helpers): the real server on
127.0.0.1 in its own process, stopped by its PID; Debian's chromium; every wait on something
the page shows with a generous bound, never a fixed sleep.
"""
from __future__ import annotations

import pytest

from tests.lab.test_browser import (  # noqa: F401  (fixtures: base_url, browser, page)
    WAIT_MS, base_url, browser, drag_to_end, expect, load, page, shot, step_count,
    wait_steps_at_least,
)

PHONE = {"width": 390, "height": 844}
NEAR_TOP_PX = 40      # the network panel starts within this of the top bar's bottom edge

# Every control a finger must hit, at least 44 x 44 CSS pixels: its own box, or the box of
# the label that wraps it or names it (a tap on the label works the control).
SMALL_TARGETS = """() => {
  const out = [];
  const shown = (el) => {
    const r = el.getBoundingClientRect(), cs = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && cs.visibility !== "hidden" && !el.closest("[hidden]");
  };
  const big = (el) => { const r = el.getBoundingClientRect(); return r.width >= 43.5 && r.height >= 43.5; };
  for (const el of document.querySelectorAll("button, select, input, textarea, a[href], [role=slider]")) {
    const labels = [el.closest("label"), el.id && document.querySelector(`label[for="${el.id}"]`)]
      .filter((l) => l && shown(l));
    if (!shown(el) && !labels.length) continue;
    if ((shown(el) && big(el)) || labels.some(big)) continue;
    const r = el.getBoundingClientRect();
    out.push(`${el.tagName.toLowerCase()}#${el.id || el.dataset.testid || el.getAttribute("aria-label") || el.name || "?"} ${Math.round(r.width)}x${Math.round(r.height)}`);
  }
  return out;
}"""

LAYOUT_TOP = "() => document.querySelector('main.layout').getBoundingClientRect().top + window.scrollY"

# The colours of the first hidden neuron's square on the network canvas.
NEURON_PIXELS = """() => {
  const view = window.__lab.views.network, canvas = view.canvas;
  const g = view.geometry(), [x, y] = g.pos[1][0], half = Math.max(2, g.sides[1] / 2 - 2);
  const k = canvas.width / canvas.getBoundingClientRect().width;
  const d = canvas.getContext("2d").getImageData(Math.round((x - half) * k), Math.round((y - half) * k),
                                                 Math.round(2 * half * k), Math.round(2 * half * k)).data;
  return Array.from(d).join(",");
}"""


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    p = context.new_page()
    p.set_default_timeout(WAIT_MS)
    p.problems = []
    p.on("console", lambda m: p.problems.append(f"console.{m.type}: {m.text}")
         if m.type == "error" else None)
    p.on("pageerror", lambda e: p.problems.append(f"uncaught: {e}"))
    yield p
    problems = list(p.problems)
    context.close()
    assert problems == [], f"the page logged errors: {problems}"


def _feed_divergence(page):
    """The latest frame again, diverged, as if the server had sent it (the page's own handler)."""
    page.evaluate("""() => {
      const f = {...window.__lab.lastFrame, diverged: {step: 7, what: "loss",
        message: "diverged at step 7: learning rate too high for this batch size?",
        recovery_lr: 0.03, recovery_stable: true}};
      delete f.points;
      window.__lab.handle(f);
    }""")


def test_phone_every_control_is_44px_and_the_network_comes_first(phone, base_url):
    load(phone, base_url)
    phone.get_by_test_id("layer-list").wait_for()      # the layer tools, under the picture
    assert phone.evaluate(SMALL_TARGETS) == []
    # the network: just under the top bar, not after the whole settings panel
    top_bar = phone.locator("header.topbar").bounding_box()
    network = phone.locator(".network-panel").bounding_box()
    controls = phone.locator(".controls").bounding_box()
    assert network["y"] - (top_bar["y"] + top_bar["height"]) <= NEAR_TOP_PX, (top_bar, network)
    assert network["y"] < controls["y"]
    assert top_bar["height"] <= 0.25 * PHONE["height"], top_bar
    # a touch screen is tapped, not hovered
    legend = phone.locator("#network-legend").inner_text()
    assert "tap" in legend and "hover" not in legend
    # the top bar stays while the page scrolls
    phone.evaluate("window.scrollTo(0, 1500)")
    phone.wait_for_function("() => window.scrollY > 1000")
    assert phone.locator("header.topbar").bounding_box()["y"] == 0
    shot(phone, "phone-scrolled")
    phone.evaluate("window.scrollTo(0, 0)")
    # the per-layer tools work from the list: a neuron more in hidden layer 1
    phone.get_by_test_id("add-neuron-0").tap()
    phone.wait_for_function("() => window.__lab.lastFrame.network.sizes[1] === 9")
    shot(phone, "phone-top")


@pytest.mark.parametrize("width,height", [(390, 844), (1280, 800)])
def test_the_divergence_banner_is_an_overlay(browser, base_url, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        load(page, base_url)
        before = page.evaluate(LAYOUT_TOP)
        _feed_divergence(page)
        banner = page.get_by_test_id("diverged")
        banner.wait_for(state="visible")
        assert page.evaluate(LAYOUT_TOP) == before
        box = banner.bounding_box()
        bar = page.locator("header.topbar").bounding_box()
        assert abs(box["y"] - (bar["y"] + bar["height"])) <= 1      # right under the top bar
        shot(page, f"banner-overlay-{width}")
    finally:
        context.close()


def test_neuron_pictures_change_while_training_and_show_large(page, base_url):
    load(page, base_url)
    page.wait_for_function("() => window.__lab.views.network.pictures"
                           " && window.__lab.views.network.pictures.layers.length === 2")
    first = page.evaluate(NEURON_PIXELS)
    page.get_by_test_id("play").click()
    page.wait_for_function(f"(first) => ({NEURON_PIXELS})() !== first", arg=first)
    page.get_by_test_id("play").click()
    # hovering the neuron shows its picture large under the data, and says what it is
    canvas = page.get_by_test_id("network")
    x, y = page.evaluate("() => window.__lab.views.network.geometry().pos[1][0]")
    canvas.hover(position={"x": x, "y": y})
    boundary = page.get_by_test_id("boundary")
    expect(boundary).to_have_attribute("data-showing", "Hidden layer 1, neuron 1")
    expect(page.locator("#boundary-caption")).to_contain_text("its output: blue positive")
    shot(page, "neuron-picture-large")
    # in gradient view, the gradient's picture, defined in words
    page.get_by_test_id("grad-view").check()
    canvas.hover(position={"x": x, "y": y})
    expect(boundary).to_have_attribute("data-showing", "Hidden layer 1, neuron 1 (gradient)")
    expect(page.locator("#boundary-caption")).to_contain_text("∂ log p(predicted class)")
    # what the gradient's picture is, defined where the squares are explained
    expect(page.get_by_test_id("picture-words")).to_contain_text(
        "∂ log p(predicted class) / ∂ the neuron's output at each point of the plane")
    # leaving it brings the boundary back; a click keeps the picture
    page.mouse.move(5, 5)
    expect(boundary).to_have_attribute("data-showing", "boundary")
    canvas.click(position={"x": x, "y": y})
    page.mouse.move(5, 5)
    expect(boundary).to_have_attribute("data-showing", "Hidden layer 1, neuron 1 (gradient)")


def test_phone_tap_on_a_neuron_shows_its_picture(phone, base_url):
    load(phone, base_url)
    phone.wait_for_function("() => window.__lab.views.network.pictures")
    x, y = phone.evaluate("() => window.__lab.views.network.geometry().pos[2][3]")
    phone.get_by_test_id("network").tap(position={"x": x, "y": y})
    expect(phone.get_by_test_id("boundary")).to_have_attribute(
        "data-showing", "Hidden layer 2, neuron 4")


def test_l1_and_l2_are_live_sliders_beside_weight_decay(page, base_url):
    load(page, base_url)
    group = page.locator("fieldset[data-group=regularisation]")
    for name in ("weight_decay", "l1", "l2"):
        expect(group.get_by_test_id(name)).to_be_visible()
    page.get_by_test_id("play").click()
    wait_steps_at_least(page, 30)
    page.get_by_test_id("play").click()
    page.wait_for_function("() => !window.__lab.running && !window.__lab.awaitStatus")
    before = step_count(page)
    page.get_by_test_id("l2").scroll_into_view_if_needed()
    drag_to_end(page, "l2")
    page.wait_for_function("() => new URLSearchParams(location.search).get('l2') === '0.1'")
    page.wait_for_function("() => window.__lab.lastFrame.settings.l2 === 0.1")
    assert step_count(page) == before          # live: the weights and the step count are kept
