"""The stability map's choices on the page, in a real Chromium: grid size, steps and what the
rows vary (batch size, initialisation, depth, momentum); a cell of any map is used with a click
or the keyboard; a map asked for again comes from the server's cache, cell for cell.

Same set-up as :mod:`tests.lab.test_browser` (its fixtures and helpers): the real server on
127.0.0.1 in its own process, stopped by its PID; Debian's chromium; every wait on something
the page shows with a generous bound, never a fixed sleep.
"""
from __future__ import annotations

from tests.lab.test_browser import (  # noqa: F401  (fixtures: base_url, browser, page)
    MAP_WAIT_MS, base_url, browser, expect, load, page, query, shot,
)

RECORD_SENT = """() => {
  const ws = window.__lab.ws, send = ws.send.bind(ws);
  window.__sent = [];
  ws.send = (text) => { window.__sent.push(JSON.parse(text)); send(text); };
}"""

VIEW = """() => { const s = window.__lab.views.stability;
  return {axis: s.axis, lrs: s.lrs, rows: s.rows, cells: s.cells.size, ring: s.ring}; }"""

CELLS = """() => [...window.__lab.views.stability.cells.values()]
  .map(c => [c.i, c.j, c.final_loss, c.diverged]).sort()"""

CELL_CENTRE = """([i, j]) => { const s = window.__lab.views.stability, g = s.layout();
  return [g.m.l + (i + 0.5) * g.cw, g.m.t + (s.rows.length - 1 - j + 0.5) * g.ch]; }"""


def run_map(page, grid, steps, axis):
    page.get_by_test_id("stability-grid").select_option(grid)
    page.get_by_test_id("stability-steps").select_option(str(steps))
    page.get_by_test_id("stability-axis").select_option(axis)
    page.get_by_test_id("stability-run").click()       # the map runs from the click on...
    page.wait_for_function("() => !window.__lab.views.stability.running",   # ...until "done"
                           timeout=MAP_WAIT_MS)
    expect(page.get_by_test_id("stability-run")).to_have_text("Run again")
    return page.evaluate("() => window.__sent.filter(m => m.type === 'stability_map').pop()")


def test_grid_steps_and_depth_rows_are_chosen_on_the_page_and_a_cell_is_used(page, base_url):
    load(page, base_url)
    page.evaluate(RECORD_SENT)
    page.get_by_test_id("stability-axis").select_option("depth")
    expect(page.get_by_test_id("stability-axis-note")).to_contain_text(
        "0 to 6 hidden layers, each of 8 neurons")
    sent = run_map(page, "coarse", 50, "depth")
    assert sent == {"type": "stability_map", "lrs": [0.001, 0.01, 0.1, 1], "axis": "depth",
                    "values": [0, 2, 4], "steps": 50}
    # 4 x 3 cells; the ring on lr 0.01 (nearest 0.03) and the network's 2 hidden layers
    assert page.evaluate(VIEW) == {"axis": "depth", "lrs": [0.001, 0.01, 0.1, 1],
                                   "rows": [0, 2, 4], "cells": 12, "ring": [1, 1]}
    shot(page, "stability-depth", full_page=True)
    # the keyboard picks lr 0.1 with 4 layers: both are used, and the map stays current
    page.get_by_test_id("stability").focus()
    for key in ("ArrowRight", "ArrowRight", "ArrowRight", "ArrowUp", "ArrowUp", "Enter"):
        page.keyboard.press(key)
    page.wait_for_function("() => { const q = new URLSearchParams(location.search);"
                           " return q.get('lr') === '0.1' && q.get('hidden') === '8,8,8,8'; }")
    page.wait_for_function("() => { const r = window.__lab.views.stability.ring;"
                           " return r && r[0] === 2 && r[1] === 2; }")
    expect(page.get_by_test_id("stability")).to_have_attribute("data-stale", "false")


def test_momentum_and_init_maps_use_a_clicked_cell_and_a_repeat_comes_from_the_cache(
        page, base_url):
    load(page, base_url)
    page.evaluate(RECORD_SENT)
    # Adam (the default optimiser): the momentum axis is its beta1, and the page says so
    page.get_by_test_id("stability-axis").select_option("momentum")
    expect(page.get_by_test_id("stability-axis-note")).to_contain_text("Adam's beta1")
    sent = run_map(page, "coarse", 50, "momentum")
    assert sent["values"] == [0, 0.9, 0.99] and sent["steps"] == 50
    first = page.evaluate(CELLS)
    assert len(first) == 12
    assert page.evaluate(VIEW)["ring"] == [1, 1]            # beta1 0.9
    x, y = page.evaluate(CELL_CENTRE, [0, 2])
    page.get_by_test_id("stability").click(position={"x": x, "y": y})
    page.wait_for_function("() => { const q = new URLSearchParams(location.search);"
                           " return q.get('lr') === '0.001' && q.get('beta1') === '0.99'; }")
    # the same map again: the server's cache answers, cell for cell
    run_map(page, "coarse", 50, "momentum")
    assert page.evaluate(CELLS) == first
    # plain SGD has no momentum: the page says so, and the server refuses such a map
    page.get_by_test_id("optimizer").select_option("sgd")
    expect(page.get_by_test_id("stability-axis-note")).to_contain_text("plain SGD")
    page.get_by_test_id("stability-run").click()
    page.get_by_test_id("error-toast").filter(has_text="sgd has none").wait_for()
    expect(page.get_by_test_id("stability-run")).to_have_text("Run again")
    # the initialisation: a categorical axis of the menu's choices; a click uses one
    page.get_by_test_id("optimizer").select_option("adam")
    sent = run_map(page, "coarse", 50, "init")
    assert sent["values"] == ["default", "xavier", "he", "too_small", "too_large"]
    view = page.evaluate(VIEW)
    assert view["rows"] == sent["values"] and view["cells"] == 20 and view["ring"][1] == 0
    x, y = page.evaluate(CELL_CENTRE, [1, 4])
    page.get_by_test_id("stability").click(position={"x": x, "y": y})
    page.wait_for_function("() => { const q = new URLSearchParams(location.search);"
                           " return q.get('lr') === '0.01' && q.get('init') === 'too_large'; }")
    page.wait_for_function("() => { const r = window.__lab.views.stability.ring;"
                           " return r && r[1] === 4; }")
    shot(page, "stability-init", full_page=True)
    assert query(page)["init"] == "too_large"


def test_on_a_phone_the_map_choices_are_44px_targets(browser, base_url):
    from tests.lab.test_phone import PHONE

    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone = context.new_page()
    try:
        load(phone, base_url)
        panel = phone.locator(".stability-panel").bounding_box()
        for testid in ("stability-axis", "stability-grid", "stability-steps", "stability-run"):
            box = phone.get_by_test_id(testid).bounding_box()
            assert box["width"] >= 43.5 and box["height"] >= 43.5, (testid, box)
            assert box["x"] >= panel["x"] and box["x"] + box["width"] <= panel["x"] + panel["width"]
        phone.get_by_test_id("stability-run").scroll_into_view_if_needed()
        shot(phone, "phone-stability-map")
    finally:
        context.close()
