"""End-to-end tests of the lab in a real headless Chromium.

The real app (``backprop.lab.server.create_app``) runs on uvicorn in its own process on a
free loopback port, configured as ``backprop lab`` configures it, and is stopped by its PID
(:mod:`tests.lab.real_server`); Playwright for Python drives Debian's chromium package at
``/usr/bin/chromium`` (never a downloaded browser). Everything skips cleanly when Playwright,
the browser, FastAPI or uvicorn is missing.

Every wait is on something the page shows, bounded generously (:data:`WAIT_MS`; a stability
map, whose worker processes must start first, :data:`MAP_WAIT_MS`): CI machines are slow
and shared, and a short fixed timeout there fails tests that are right.

Screenshots are saved as test artefacts in ``$BACKPROP_ARTIFACTS`` (default
``tests/lab/artifacts/``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000       # for anything the page shows: generous, CI machines are slow and shared
MAP_WAIT_MS = 120_000  # for a stability map: its worker processes start first

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
expect = sync_api.expect
expect.set_options(timeout=WAIT_MS)   # expect() waits 5 s by default, page waits do not
pytest.importorskip("fastapi", reason="the lab needs FastAPI (pip install 'backprop[lab]')")
uvicorn = pytest.importorskip("uvicorn", reason="the lab needs uvicorn (pip install 'backprop[lab]')")
pytest.importorskip("websockets",
                    reason="uvicorn needs websockets for the lab's socket (pip install 'backprop[lab]')")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

ARTIFACTS = Path(os.environ.get("BACKPROP_ARTIFACTS") or Path(__file__).parent / "artifacts")


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """The lab's real app on uvicorn in a child process on a free loopback port."""
    from tests.lab.real_server import RealServer

    try:
        server = RealServer(tmp_path_factory.mktemp("lab") / "server.log")
    except RuntimeError as e:
        pytest.fail(str(e))
    yield f"http://127.0.0.1:{server.port}/"
    alive = server.alive()
    server.stop()
    assert alive, f"the lab's server died:\n{server.log()}"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as e:  # a broken browser install is not a lab bug
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {e}")
        yield b
        b.close()


def _open(browser, width=1280, height=800):
    """A new page that records console errors and uncaught exceptions."""
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.problems = []
    page.on("console", lambda m: page.problems.append(f"console.{m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(f"uncaught: {e}"))
    return page


@pytest.fixture
def page(browser):
    p = _open(browser)
    yield p
    problems = list(p.problems)
    p.context.close()
    assert problems == [], f"the page logged errors: {problems}"


@pytest.fixture
def narrow_page(browser):
    p = _open(browser, width=400, height=860)
    yield p
    problems = list(p.problems)
    p.context.close()
    assert problems == [], f"the page logged errors: {problems}"


def shot(page, name, **kw):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), **kw)


# -- helpers --------------------------------------------------------------------------------------
def text(page, testid) -> str:
    return page.get_by_test_id(testid).inner_text().strip()


def step_count(page) -> int:
    return int(text(page, "step-count").replace(",", ""))


def step_and_epoch(page) -> tuple:
    """The step and epoch counters read together: both come from the same frame (two
    separate reads can straddle a frame, which carries many steps on a fast engine)."""
    pair = page.evaluate(
        "() => ['step-count', 'epoch-count'].map(id => parseInt(document.querySelector("
        "`[data-testid=${id}]`).textContent.replace(/,/g, ''), 10))")
    return pair[0], pair[1]


def load(page, url):
    """Open the lab and wait for its first frame from the server."""
    page.goto(url)
    page.get_by_test_id("lr").wait_for()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=connection]').dataset.state === 'open'"
        " && window.__lab && window.__lab.frames > 0")


def wait_steps_at_least(page, n):
    page.wait_for_function(
        "n => parseInt(document.querySelector('[data-testid=step-count]').textContent"
        ".replace(/,/g, ''), 10) >= n", arg=n)


def query(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}


def drag_to_end(page, testid):
    """Drag a slider's thumb past the right end of its track with the mouse."""
    box = page.get_by_test_id(testid).bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    for frac in (0.7, 0.9, 1.1):      # a few moves, as a hand would
        page.mouse.move(box["x"] + box["width"] * frac, y)
    page.mouse.up()


# -- tests ----------------------------------------------------------------------------------------
def test_play_trains_the_spiral_and_the_loss_falls(page, base_url):
    load(page, base_url)
    assert page.get_by_test_id("dataset").input_value() == "spiral"
    assert step_count(page) == 0
    first = float(text(page, "train-loss"))
    assert first > 0.5            # 3 classes, untrained: about ln 3

    page.get_by_test_id("play").click()
    expect(page.get_by_test_id("play")).to_have_attribute("aria-pressed", "true")
    # the whole-training-set loss, as the page shows it, must fall well below the start
    page.wait_for_function(
        "first => { const v = parseFloat(document.querySelector('[data-testid=train-loss]')"
        ".textContent); return v < 0.75 * first; }", arg=first)
    later = float(text(page, "train-loss"))
    assert later < 0.75 * first
    assert step_count(page) > 0
    # the views are drawn: a heat map under the points, loss curve, bars, network
    colours = page.evaluate("""() => {
        const c = document.querySelector('[data-testid=boundary]');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4 * 97) seen.add(`${d[i]},${d[i+1]},${d[i+2]}`);
        return seen.size;
    }""")
    assert colours > 20
    assert page.locator("[data-testid=grad-bars] .grad-row").count() == 3   # 2 hidden + output
    page.get_by_test_id("play").click()
    expect(page.get_by_test_id("play")).to_have_attribute("aria-pressed", "false")
    shot(page, "spiral-training")


def test_learning_rate_at_the_top_diverges_and_reset_clears_it(page, base_url):
    load(page, base_url)
    drag_to_end(page, "lr")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=lr-value]').textContent.trim() === '10'")
    page.wait_for_function("() => location.search.includes('lr=10')")   # the server accepted it
    page.get_by_test_id("play").click()

    banner = page.get_by_test_id("diverged")
    banner.wait_for(state="visible")
    message = banner.inner_text()
    assert re.search(r"diverged at step \d+: learning rate too high for this batch size\?", message)
    # the charts keep what they had (the loss curve is not blank) and training stopped
    expect(page.get_by_test_id("play")).to_have_attribute("aria-pressed", "false")
    assert page.evaluate("() => window.__lab.frames") > 0
    assert page.locator("[data-testid=loss-chart]").bounding_box()["height"] > 100
    # the doctor says so too, in plain words
    finding = page.locator("[data-testid=findings] li.error[data-name=divergence]")
    finding.wait_for()
    assert "learning rate" in finding.inner_text().lower()
    shot(page, "diverged")

    page.get_by_test_id("diverged-reset").click()
    banner.wait_for(state="hidden")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=step-count]').textContent.trim() === '0'")
    assert text(page, "lr-value") == "10"         # reset keeps the settings


def test_batch_size_change_takes_effect_while_training(page, base_url):
    load(page, base_url)
    page.get_by_test_id("play").click()
    wait_steps_at_least(page, 20)
    # keyboard: the slider is a native range input; End moves it to the training set's size
    page.get_by_test_id("batch_size").focus()
    page.keyboard.press("End")
    page.wait_for_function("() => new URLSearchParams(location.search).get('batch_size')")
    n_train = int(query(page)["batch_size"])
    assert n_train > 16
    assert text(page, "batch_size-value") == str(n_train)
    # frames trained with the new batch size say so...
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=now]').textContent.includes('batch {n_train}')")
    # ...and training goes on: with the whole training set per step, one step is one epoch
    step0, epoch0 = step_and_epoch(page)
    wait_steps_at_least(page, step0 + 20)
    step1, epoch1 = step_and_epoch(page)
    steps, epochs = step1 - step0, epoch1 - epoch0
    assert abs(epochs - steps) <= 2, (steps, epochs)
    page.get_by_test_id("play").click()
    shot(page, "batch-size-full")


def test_one_step_adds_exactly_one_step_and_animates_it(page, base_url):
    load(page, base_url + "?hidden=4,3")
    before = step_count(page)
    page.get_by_test_id("step").click()
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=step-count]').textContent.trim() === '{before + 1}'")
    page.get_by_test_id("step-phase").filter(has_text="Forward").wait_for()
    shot(page, "one-step-forward")
    page.get_by_test_id("step-phase").filter(has_text="Backward").wait_for()
    page.get_by_test_id("step-phase").filter(has_text=f"Step {before + 1} done").wait_for()
    assert step_count(page) == before + 1          # nothing trained in the meantime
    page.get_by_test_id("step").click()
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=step-count]').textContent.trim() === '{before + 2}'")
    expect(page.get_by_test_id("play")).to_have_attribute("aria-pressed", "false")


def test_the_url_carries_the_settings(page, base_url):
    load(page, base_url + "?dataset=moons&lr=0.1&hidden=4,4")
    assert page.get_by_test_id("dataset").input_value() == "moons"
    assert text(page, "lr-value") == "0.1"
    assert text(page, "layer-count") == "2"
    assert page.locator(".layer-tool .n").all_inner_texts() == ["4", "4"]
    page.get_by_test_id("optimizer").select_option("sgd")
    page.wait_for_function("() => new URLSearchParams(location.search).get('optimizer') === 'sgd'")
    page.get_by_test_id("add-layer").click()
    page.wait_for_function("() => new URLSearchParams(location.search).get('hidden') === '4,4,4'")
    q = query(page)
    assert q["dataset"] == "moons" and q["lr"] == "0.1" and q["optimizer"] == "sgd"

    # the link reproduces the setting in a fresh page
    link = page.url
    page.goto("about:blank")
    load(page, link)
    assert page.get_by_test_id("optimizer").input_value() == "sgd"
    assert page.get_by_test_id("dataset").input_value() == "moons"
    assert text(page, "layer-count") == "3"
    assert text(page, "lr-value") == "0.1"


def test_export_buttons_download_a_script_and_a_checkpoint(page, base_url):
    load(page, base_url + "?hidden=4")
    page.get_by_test_id("step").click()
    wait_steps_at_least(page, 1)
    with page.expect_download() as info:
        page.get_by_test_id("export-script").click()
    script = Path(info.value.path()).read_text()
    assert info.value.suggested_filename.endswith(".py")
    assert "import backprop" in script or "from backprop" in script
    compile(script, info.value.suggested_filename, "exec")     # valid Python
    with page.expect_download() as info:
        page.get_by_test_id("export-checkpoint").click()
    assert info.value.suggested_filename.endswith(".safetensors")
    data = Path(info.value.path()).read_bytes()
    header = int.from_bytes(data[:8], "little")      # safetensors: u64 header size, JSON header
    assert data[8:9] == b"{" and 8 + header <= len(data)


def test_narrow_screen_has_no_horizontal_overflow(narrow_page, base_url):
    page = narrow_page
    load(page, base_url)
    page.get_by_test_id("play").click()
    wait_steps_at_least(page, 10)
    page.get_by_test_id("play").click()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 400, f"the page is {width}px wide on a 400px screen"
    for testid in ("boundary", "loss-chart", "network", "lr", "play"):
        box = page.get_by_test_id(testid).bounding_box()
        assert box["width"] > 0 and box["x"] >= 0 and box["x"] + box["width"] <= 400, testid
    shot(page, "narrow", full_page=True)


def test_the_doctor_names_vanishing_gradients(page, base_url):
    load(page, base_url + "?activation=sigmoid&hidden=8,8,8,8,8,8&init=too_small"
                          "&optimizer=sgd&lr=0.1&speed=1000")
    page.get_by_test_id("play").click()
    finding = page.locator("[data-testid=findings] li[data-name=vanishing_gradients]")
    finding.wait_for()
    page.get_by_test_id("play").click()
    words = finding.inner_text()
    # layers are named as the gradient bars name them, not by module numbers (0, 3, ..., 18)
    assert "layer 1" in words and not re.search(r"\blayer (1\d|[7-9])\b", words)
    assert page.locator("[data-testid=grad-bars] .name").all_inner_texts()[0] == "layer 1"
    shot(page, "doctor-vanishing", full_page=True)


# Every control a person can reach, with the name a screen reader gives it.
CONTROL_NAMES = """() => [...document.querySelectorAll('input, select, button')]
    .filter((el) => !el.closest('[hidden]') && (el.offsetParent !== null || el.type === 'file'))
    .map((el) => {
      let name = el.getAttribute('aria-label') || '';
      if (!name && el.getAttribute('aria-labelledby')) name = el.getAttribute('aria-labelledby')
          .split(' ').map((id) => (document.getElementById(id) || {}).textContent || '').join(' ');
      if (!name && el.labels && el.labels.length) {
        name = [...el.labels].map((l) => l.textContent).join(' ');
      }
      if (!name && el.tagName === 'BUTTON') name = el.textContent;
      return [el.dataset.testid || el.id || el.outerHTML.slice(0, 60), name.trim()];
    })"""


def test_controls_have_names_and_work_by_mouse_and_keyboard(page, base_url):
    load(page, base_url + "?hidden=4,3")
    # keyboard: Tab from the page's start reaches Play, Space and Enter press it, keys move sliders
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.dataset.testid") == "play"
    page.keyboard.press("Space")
    expect(page.get_by_test_id("play")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("play")).to_have_attribute("aria-pressed", "false")
    page.get_by_test_id("lr").focus()
    page.keyboard.press("PageUp")
    page.wait_for_function("() => Number(new URLSearchParams(location.search).get('lr')) > 0.03")
    controls = page.evaluate(CONTROL_NAMES)
    assert len(controls) > 30
    assert [c for c in controls if not c[1]] == []
    # the layer tools sit over the network picture: a real mouse click reaches them
    page.get_by_test_id("add-neuron-0").click()
    page.wait_for_function("() => new URLSearchParams(location.search).get('hidden') === '5,3'")
    page.get_by_test_id("activation-1").click()
    page.get_by_test_id("activation-1").select_option("relu")
    page.wait_for_function(
        "() => new URLSearchParams(location.search).get('activations') === 'tanh,relu'")
    # knobs show only where they mean something
    page.get_by_test_id("optimizer").select_option("rmsprop")
    expect(page.get_by_test_id("momentum")).to_be_hidden()
    page.get_by_test_id("optimizer").select_option("momentum")
    expect(page.get_by_test_id("momentum")).to_be_visible()


def test_csv_upload_and_stability_map(page, base_url, tmp_path):
    load(page, base_url)
    rows = "".join(f"{(i % 7) / 7 - 0.5:.3f},{(i % 5) / 5 - 0.5:.3f},"
                   f"{'yes' if i % 7 > 3 else 'no'}\n" for i in range(40))
    upload = tmp_path / "mine.csv"
    upload.write_text("a,b,kind\n" + rows)
    page.get_by_test_id("csv").set_input_files(str(upload))
    page.get_by_test_id("toast").filter(has_text="Loaded your CSV: 40 rows, 2 classes (no, yes)") \
        .wait_for()
    page.wait_for_function("() => new URLSearchParams(location.search).get('dataset') === 'csv'")
    assert page.get_by_test_id("dataset").input_value() == "csv"
    # a small map (the Run button asks for 6 x 5 runs of 200 steps): cells fill in, and the
    # diverged ones are drawn in their own colour
    page.evaluate("""() => window.__lab.ws.send(JSON.stringify({type: 'stability_map',
        lrs: [0.01, 10], batch_sizes: [4], steps: 40}))""")
    # done when the page says so: the worker processes may take long to start on a busy machine
    expect(page.get_by_test_id("stability-run")).to_have_text("Run again", timeout=MAP_WAIT_MS)
    diverged_pixels = page.evaluate("""() => {
        const c = document.querySelector('[data-testid=stability]');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) n += d[i] === 127 && d[i+1] === 29 && d[i+2] === 45;
        return n;
    }""")
    assert diverged_pixels > 100
    # a cell is picked with the keyboard too: its learning rate and batch size are used
    page.get_by_test_id("stability").focus()
    page.keyboard.press("ArrowRight")          # the first cell
    page.keyboard.press("ArrowRight")          # lr 10
    page.keyboard.press("Enter")
    page.wait_for_function("() => { const q = new URLSearchParams(location.search);"
                           " return q.get('lr') === '10' && q.get('batch_size') === '4'; }")
    shot(page, "csv-and-stability", full_page=True)


def test_a_csv_too_big_is_refused_by_the_page_and_the_session_goes_on(page, base_url, tmp_path):
    from backprop.lab.session import LIMITS

    load(page, base_url)
    limit = LIMITS["max_csv_bytes"]
    big = tmp_path / "big.csv"
    row = "0.125,0.5,1\n"
    big.write_text(row * (2 * limit // len(row)))        # 2 MB: the server would refuse it
    page.get_by_test_id("csv").set_input_files(str(big))
    page.get_by_test_id("error-toast").filter(
        has_text=f"big.csv is 2 MB: the lab takes CSV files of at most {limit / 1e6:g} MB").wait_for()
    # nothing was sent: the connection and the session are as they were, and work
    assert page.evaluate("() => document.querySelector('[data-testid=connection]').dataset.state") \
        == "open"
    assert page.get_by_test_id("dataset").input_value() == "spiral"
    before = step_count(page)
    page.get_by_test_id("step").click()
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=step-count]').textContent.trim() === '{before + 1}'")
