"""The lab's server through the ASGI test client: pages, the WebSocket session, safety."""
import asyncio
import base64
import io
import itertools
import json
import re
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx2")  # what starlette.testclient uses (httpx is deprecated there)
anyio = pytest.importorskip("anyio")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

import backprop  # noqa: E402
from backprop.lab.server import create_app, origin_allowed  # noqa: E402

TIMEOUT = 60.0      # for one expected message: generous, CI machines are loaded


def recv(ws, timeout: float = TIMEOUT) -> dict:
    """The next message, or a test failure after ``timeout`` seconds (never a hang)."""
    async def receive():
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    try:
        message = ws.portal.call(receive)
    except TimeoutError:
        pytest.fail(f"no message from the lab within {timeout} s")
    ws._raise_on_close(message)
    return json.loads(message["text"])


def until(ws, predicate, limit: int = 500) -> dict:
    """Receive until a message satisfies ``predicate``; returns it."""
    for _ in range(limit):
        message = recv(ws)
        if predicate(message):
            return message
    pytest.fail("the expected message never came")


def of_type(kind):
    return lambda m: m["type"] == kind


def hello(ws, settings=None) -> dict:
    ws.send_json({"type": "hello", **({"settings": settings} if settings else {})})
    first = [recv(ws), recv(ws), recv(ws)]
    assert [m["type"] for m in first] == ["settings", "status", "state"]
    return first[2]


@pytest.fixture
def client():
    app = create_app(max_sessions=2)
    with TestClient(app) as c:
        yield c


def wait_for(predicate, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_pages_and_settings_table(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    table = client.get("/api/settings").json()
    assert table["lr"]["default"] == 0.03 and table["lr"]["effect"] == "live"
    assert list(table)[0] == "dataset"
    limits = client.get("/api/limits").json()
    assert limits["max_sessions"] == 2 and limits["max_fps"] == 10
    assert client.get("/static/no-such-file.js").status_code == 404


def test_hello_play_and_live_lr_change(client):
    with client.websocket_connect("/ws") as ws:
        first = hello(ws, {"hidden": [4], "lr": 0.01})
        assert first["step"] == 0 and first["running"] is False and "points" in first
        assert first["settings"]["hidden"] == [4] and first["settings"]["lr"] == 0.01
        ws.send_json({"type": "play"})
        assert until(ws, of_type("status"))["running"] is True
        frame = until(ws, lambda m: m["type"] == "state" and m["step"] > 0)
        assert frame["running"] and "points" not in frame
        ws.send_json({"type": "set", "values": {"lr": 0.2}})
        assert until(ws, of_type("settings"))["values"]["lr"] == 0.2
        trained = until(ws, lambda m: m["type"] == "state" and m["settings"]["lr"] == 0.2
                        and m["step"] > m["settings_step"])
        assert trained["settings_step"] >= frame["step"] and trained["lr_now"] == 0.2
        assert trained["settings"]["hidden"] == [4]           # a live change: no rebuild
        later = until(ws, lambda m: m["type"] == "state" and m["step"] > trained["step"])
        assert later["settings"]["lr"] == 0.2 and later["settings_step"] == trained["settings_step"]
        ws.send_json({"type": "pause"})
        assert until(ws, of_type("status"))["running"] is False


def test_frames_are_rate_limited():
    app = create_app(max_fps=5)
    with TestClient(app) as c, c.websocket_connect("/ws") as ws:
        hello(ws, {"speed": 1000})
        start = time.monotonic()          # every frame counted below is made after this
        ws.send_json({"type": "play"})
        frames = 0
        while frames < 8:                 # wait on the frames themselves, however slow
            frames += until(ws, of_type("state"))["step"] > 0
        elapsed = time.monotonic() - start
        # A loaded machine only makes frames rarer: the bound holds whatever the timing
        # (frames waiting unread in the client count too, since they were made after start).
        assert frames <= 5 * elapsed + 1, (frames, elapsed)


def test_step_reset_and_step_detail(client):
    with client.websocket_connect("/ws") as ws:
        hello(ws, {"hidden": [3]})
        ws.send_json({"type": "step"})
        detail = until(ws, of_type("step_detail"))
        assert detail["step"] == 1 and len(detail["forward"]) == 2
        assert until(ws, of_type("status")) == {"type": "status", "running": False, "step": 1}
        assert until(ws, of_type("state"))["step"] == 1
        ws.send_json({"type": "step"})
        assert until(ws, of_type("step_detail"))["step"] == 2
        ws.send_json({"type": "reset"})
        assert until(ws, of_type("settings"))["values"]["hidden"] == [3]
        frame = until(ws, of_type("state"))
        assert frame["step"] == 0 and frame["train_loss"] == [[0, frame["metrics"]["train_loss"]]]


@pytest.mark.parametrize("bad, expected", [
    ("{oops", {"message": "message is not valid JSON"}),
    (json.dumps({"type": "jump"}), {"message": "unknown message type 'jump'", "field": "type"}),
    (json.dumps({"type": "set", "values": {"lr": 50}}),
     {"message": "lr must be between 1e-05 and 10, got 50", "field": "lr"}),
    (json.dumps({"type": "set", "values": {"optimizer": "lbfgs"}}),
     {"message": "optimizer must be one of", "field": "optimizer"}),
    (json.dumps({"type": "upload_csv", "text": "1,2\n"}), {"message": "CSV row 1"}),
])
def test_bad_messages_get_an_error_and_the_session_goes_on(client, bad, expected):
    with client.websocket_connect("/ws") as ws:
        hello(ws)
        ws.send_text(bad)
        error = until(ws, of_type("error"))
        assert error["message"].startswith(expected["message"]), error
        assert error.get("field") == expected.get("field")
        ws.send_json({"type": "step"})
        assert until(ws, of_type("step_detail"))["step"] == 1


def test_rejected_set_changes_nothing_and_resends_settings(client):
    with client.websocket_connect("/ws") as ws:
        hello(ws)
        ws.send_json({"type": "set", "values": {"lr": 0.5, "batch_size": 0}})
        assert until(ws, of_type("error"))["field"] == "batch_size"
        assert until(ws, of_type("settings"))["values"]["lr"] == 0.03   # all or nothing


def test_hello_skips_bad_link_values(client):
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "hello", "settings": {"lr": 99, "batch_size": 8,
                                                    "dataset": "csv"}})
        errors = [recv(ws), recv(ws)]
        assert [e["field"] for e in errors] == ["lr", "dataset"]
        settings = until(ws, of_type("settings"))["values"]
        assert settings["batch_size"] == 8 and settings["lr"] == 0.03
        assert settings["dataset"] == "spiral"


def test_hello_takes_link_settings_in_any_order(client):
    # backprop.lab.settings.to_query sorts names: "activations" comes before "hidden"
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "hello", "settings": {
            "activations": ["relu", "tanh", "gelu"], "hidden": [5, 4, 3], "lr": 0.1}})
        first = recv(ws)
        assert first["type"] == "settings", first
        assert first["values"]["hidden"] == [5, 4, 3]
        assert first["values"]["activations"] == ["relu", "tanh", "gelu"]


def test_diverged_state_over_the_socket(client):
    with client.websocket_connect("/ws") as ws:
        hello(ws, {"dataset": "sine", "optimizer": "sgd", "lr": 10.0, "speed": 1000})
        ws.send_json({"type": "play"})
        assert until(ws, of_type("status"))["running"] is True
        stopped = until(ws, lambda m: m["type"] == "status" or
                        (m["type"] == "state" and m["diverged"]))
        frame = stopped if stopped["type"] == "state" else until(ws, of_type("state"))
        assert frame["diverged"]["message"].startswith(
            f"diverged at step {frame['diverged']['step']}: learning rate too high")
        assert frame["running"] is False
        ws.send_json({"type": "play"})
        assert "reset to start again" in until(ws, of_type("error"))["message"]
        ws.send_json({"type": "reset"})
        assert until(ws, of_type("state"))["diverged"] is None


def test_upload_and_export(client):
    rows = "".join(f"{i / 20:.3f},{(i * 7 % 20) / 20:.3f},{i % 2}\n" for i in range(40))
    with client.websocket_connect("/ws") as ws:
        hello(ws)
        ws.send_json({"type": "upload_csv", "text": "x1,x2,label\n" + rows, "name": "mine.csv"})
        loaded = until(ws, of_type("csv_loaded"))
        assert loaded["rows"] == 40 and loaded["task"] == "classification"
        assert until(ws, of_type("settings"))["values"]["dataset"] == "csv"
        assert len(until(ws, lambda m: m["type"] == "state" and "points" in m)
                   ["points"]["train"]) == 28
        ws.send_json({"type": "export", "what": "script"})
        script = until(ws, of_type("export"))
        assert script["filename"].endswith(".py") and "build_model(SETTINGS" in script["text"]
        compile(script["text"], script["filename"], "exec")
        ws.send_json({"type": "export", "what": "checkpoint"})
        ckpt = until(ws, of_type("export"))
        data = backprop.load(io.BytesIO(base64.b64decode(ckpt["base64"])))
        assert data["settings"]["dataset"] == "csv" and data["sizes"] == [2, 8, 8, 2]
        assert np.asarray(data["model"]["0.weight"].numpy()).shape == (8, 2)


def test_too_many_sessions(client):
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
        hello(a)
        hello(b)
        with client.websocket_connect("/ws") as c:
            error = recv(c)
            assert error["type"] == "error" and "already has 2 sessions open" in error["message"]
            with pytest.raises(WebSocketDisconnect) as closed:
                recv(c)
            assert closed.value.code == 1013


def lab_threads():
    return [t for t in threading.enumerate() if t.name.startswith("backprop-lab-session")]


def test_disconnect_cleans_up():
    app = create_app()
    with TestClient(app) as c:
        before = set(lab_threads())
        with c.websocket_connect("/ws") as ws:
            hello(ws, {"speed": 1000})
            ws.send_json({"type": "play"})
            until(ws, lambda m: m["type"] == "state" and m["step"] > 0)
            assert len(app.state.workers) == 1
            assert len(set(lab_threads()) - before) == 1
        assert wait_for(lambda: not app.state.workers)
        assert wait_for(lambda: not set(lab_threads()) - before)
        with c.websocket_connect("/ws") as ws:     # the freed slot can be used again
            hello(ws)


@pytest.mark.parametrize("origin", ["https://evil.example", "http://testserver:9999", "null",
                                    "http://127.0.0.1.evil.example"])
def test_foreign_origin_is_refused(client, origin):
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/ws", headers={"origin": origin}) as ws:
            recv(ws)
    assert refused.value.code == 1008


def test_same_origin_and_allowed_origins():
    app = create_app(allowed_origins=["https://lab.example.org/"])
    with TestClient(app) as c:
        for origin in ("http://testserver", "https://lab.example.org"):
            with c.websocket_connect("/ws", headers={"origin": origin}) as ws:
                hello(ws)


def test_host_check_against_dns_rebinding():
    app = create_app(allowed_hosts=["localhost", "127.0.0.1", "::1"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        with c.websocket_connect("/ws", headers={"host": "127.0.0.1:8000",
                                                 "origin": "http://localhost:8000"}) as ws:
            hello(ws)
        with pytest.raises(WebSocketDisconnect) as refused:
            with c.websocket_connect("/ws", headers={"host": "rebound.example:8000",
                                                     "origin": "http://rebound.example:8000"}):
                pass
        assert refused.value.code == 1008


def test_origin_rules():
    assert origin_allowed(None, "127.0.0.1:8000")
    assert origin_allowed("http://localhost:8000", "127.0.0.1:8000")
    assert origin_allowed("http://[::1]:8000", "localhost:8000")
    assert origin_allowed("http://lab.local", "lab.local:80")
    assert not origin_allowed("http://localhost:8001", "127.0.0.1:8000")
    assert not origin_allowed("http://evil.example:8000", "127.0.0.1:8000")
    assert not origin_allowed("file://", "127.0.0.1:8000")
    assert not origin_allowed("http://localhost:8000", None)
    assert origin_allowed("https://proxy.example", "127.0.0.1:8000", {"https://proxy.example"})


def test_message_rate_limit(monkeypatch):
    from backprop.lab import server

    looked, passed = [], []
    take = server._TokenBucket.take
    monkeypatch.setattr(server._TokenBucket, "take",
                        lambda self: looked.append(1) or passed.append(take(self)) or passed[-1])
    # a bucket that refills once in 1000 s: however slowly this test runs, 3 messages pass
    app = create_app(message_rate=0.001, message_burst=3)
    with TestClient(app) as c, c.websocket_connect("/ws") as ws:
        hello(ws)
        for _ in range(8):
            ws.send_json({"type": "pause"})
        assert wait_for(lambda: len(looked) == 9)          # every message was looked at
        assert passed.count(True) == 3                     # hello and two pauses
        errors, statuses = [], 0
        while not errors or statuses < 2:                  # the answers, in either order
            message = recv(ws)
            statuses += message["type"] == "status"
            if message["type"] == "error":
                errors.append(message)
        assert errors[0]["message"].startswith("too many messages")


def test_create_app_checks_arguments():
    with pytest.raises(ValueError, match="max_sessions must be a positive int, got 0"):
        create_app(max_sessions=0)
    with pytest.raises(ValueError, match="max_fps must be positive"):
        create_app(max_fps=0)


# -- hostile input --------------------------------------------------------------------------------
HUGE = "9" * 400          # a JSON number: json.loads makes it an exact int


def numeric_fields():
    """(message text, the field its error must name) for every number a message can carry."""
    from backprop.lab.settings import SETTINGS

    cases = [(f'{{"type": "stability_map", "steps": {HUGE}}}', "steps"),
             (f'{{"type": "stability_map", "lrs": [0.1, {HUGE}]}}', "lrs"),
             (f'{{"type": "stability_map", "batch_sizes": [{HUGE}]}}', "batch_sizes"),
             (f'{{"type": "hello", "settings": {{"lr": {HUGE}}}}}', "lr")]
    for name, spec in SETTINGS.items():
        if spec["type"] in ("int", "float"):
            cases.append((f'{{"type": "set", "values": {{"{name}": {HUGE}}}}}', name))
            cases.append((f'{{"type": "set", "values": {{"{name}": -{HUGE}}}}}', name))
        elif spec["type"] == "list" and spec["item"]["type"] == "int":
            cases.append((f'{{"type": "set", "values": {{"{name}": [{HUGE}]}}}}', name))
    return cases


def test_huge_numbers_in_every_field_get_an_error_naming_it(client):
    with client.websocket_connect("/ws") as ws:
        hello(ws)
        for text, field in numeric_fields():
            ws.send_text(text)
            error = until(ws, of_type("error"))
            assert error["field"] == field, (text[:60], error)
            assert field in error["message"] and "400 digits" in error["message"], error
            assert "failed" not in error["message"], error      # not a crash report
            ws.send_json({"type": "step"})                       # the session lives
            until(ws, of_type("step_detail"))


def test_outgoing_queue_is_bounded():
    from backprop.lab.server import _MESSAGE_OVERHEAD, _Worker

    loop = asyncio.new_event_loop()
    try:
        worker = _Worker(loop, 10.0, {}, max_outbox_bytes=20_000)
        for i in range(50):                       # stale answers pile up unread
            worker.post({"type": "status", "running": False, "step": i})
            worker.post({"type": "settings", "values": {"seed": i}})
        worker.post({"type": "state", "step": 1, "points": [1]})
        worker.post({"type": "state", "step": 2})       # replaces the unsent frame...
        worker.post({"type": "export", "what": "script", "text": "x" * 9000})
        # ...and on overflow the stale status and settings go first: the page is not dropped
        assert not worker.behind and worker.out_bytes <= 20_000
        kinds = [json.loads(worker.take())["type"] for _ in range(4)]
        assert kinds == ["status", "settings", "state", "export"] and worker.take() is None
        # a page that still reads nothing is dropped once its answers alone overflow
        for _ in range(3):
            worker.post({"type": "export", "what": "script", "text": "x" * 9000})
        assert worker.behind and worker.out_bytes == 0 and worker.take() is None
        assert worker.stopped.is_set()
        loop.run_until_complete(asyncio.sleep(0))       # run the callbacks posted to the loop
        assert worker.kicked.is_set()
        worker.post({"type": "export", "what": "script", "text": "x"})   # ignored now
        assert worker.take() is None
    finally:
        loop.close()
    assert _MESSAGE_OVERHEAD > 0


def test_state_frames_keep_unsent_points():
    from backprop.lab.server import _Worker

    loop = asyncio.new_event_loop()
    try:
        worker = _Worker(loop, 10.0, {})
        worker.post({"type": "state", "step": 1, "points": [[0, 0, 1]]})
        worker.post({"type": "error", "message": "m", "field": None})
        worker.post({"type": "state", "step": 2})
        assert json.loads(worker.take())["type"] == "error"
        frame = json.loads(worker.take())
        assert frame["step"] == 2 and frame["points"] == [[0, 0, 1]]
    finally:
        loop.close()


def test_http_routes_check_the_host_header():
    app = create_app(allowed_hosts=["localhost", "127.0.0.1", "::1"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        for path in ("/", "/api/settings", "/api/limits", "/static/app.js"):
            refused = c.get(path, headers={"host": "evil.example:8000"})
            assert refused.status_code == 400, path
            assert "evil.example" in refused.text
            for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"):
                assert c.get(path, headers={"host": host}).status_code == 200, (path, host)
    with TestClient(create_app()) as c:                 # no allow-list: any host
        assert c.get("/", headers={"host": "lab.example.org"}).status_code == 200


# -- protocol fuzzing -----------------------------------------------------------------------------
def _edges():
    """Numbers at the edges of what JSON carries and Python converts: 400-digit ints
    overflow float(), 1e400 parses as inf, Python's json accepts NaN and Infinity."""
    from hypothesis import strategies as st

    return st.sampled_from([10 ** 400, -(10 ** 400), 2 ** 64, 2 ** 63 - 1, -1, 0, 1e308,
                            -1e308, 5e-324, float("nan"), float("inf"), -float("inf")])


def _json_values():
    from hypothesis import strategies as st

    scalars = (st.none() | st.booleans() | st.integers() | _edges() | st.floats()
               | st.text(max_size=12))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=8)


def _messages():
    """Messages shaped like the schema (known types and fields, any values), and junk."""
    from hypothesis import strategies as st

    from backprop.lab.protocol import MESSAGE_TYPES
    from backprop.lab.settings import SETTINGS

    values, edges = _json_values(), _edges()
    setting = st.sampled_from(list(SETTINGS)) | st.text(max_size=8)
    settings = st.dictionaries(setting, values | edges | st.sampled_from(
        [0, 1, 2, 0.5, 1e-3, 10, 2000, "relu", "sgd", "csv", "digits", [4], [32] * 6, None]),
        max_size=4)
    numbers = st.lists(st.integers(-3, 3000) | st.floats() | edges | values, max_size=5)
    own = {"hello": {"settings": settings}, "set": {"values": settings},
           "stability_map": {"lrs": numbers | values, "batch_sizes": numbers | values,
                             "steps": st.integers(-5, 3000) | edges | values,
                             "axis": st.sampled_from(["batch_size", "init", "depth",
                                                      "momentum"]) | values,
                             "values": numbers | values | st.lists(
                                 st.sampled_from(["he", "too_large", "x"]), max_size=3)},
           "upload_csv": {"text": st.text(max_size=200) | values, "name": values},
           "export": {"what": st.sampled_from(["script", "checkpoint"]) | values}}
    # each type with its own fields (any values), and now and then a field it does not take
    shaped = st.one_of([st.fixed_dictionaries({"type": st.just(kind)}, optional={
        **own.get(kind, {}), "extra": values}) if i % 3 == 0 else
        st.fixed_dictionaries({"type": st.just(kind)}, optional=own.get(kind, {}))
        for kind in MESSAGE_TYPES for i in range(3)]).map(lambda m: ("text", json.dumps(m)))
    other = st.dictionaries(st.text(max_size=8), values, max_size=3).map(
        lambda m: ("text", json.dumps(m)))
    junk = (st.text(max_size=40).map(lambda t: ("text", t))
            | st.binary(max_size=40).map(lambda b: ("bytes", b)))
    return shaped | other | junk


class _Link:
    """One session for many examples; a new one when a message killed the last."""

    def __init__(self, client):
        self.client = client
        self.context = self.ws = None

    def socket(self):
        if self.ws is None:
            self.context = self.client.websocket_connect("/ws")
            self.ws = self.context.__enter__()
            hello(self.ws)
        return self.ws

    def lost(self):
        context, self.context, self.ws = self.context, None, None
        try:
            context.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 -- it is dead already
            pass


@pytest.fixture(scope="module")
def fuzz_link():
    # no rate limit here: the fuzzing sends as fast as it can; one worker for the maps
    app = create_app(message_rate=1e9, message_burst=10 ** 9, stability_workers=1)
    with TestClient(app) as c:
        link = _Link(c)
        yield link
        if link.ws is not None:
            link.lost()


def test_protocol_fuzz_every_message_is_answered_or_refused_and_the_session_lives(fuzz_link):
    hypothesis = pytest.importorskip("hypothesis")
    probes = itertools.count(1)

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(_messages())
    def one(message):
        kind, data = message
        ws = fuzz_link.socket()
        try:
            if kind == "text":
                ws.send_text(data)
            else:
                ws.send_bytes(data)
            # then a normal client's requests: stop what it started, change a setting
            speed = next(probes) % 997 + 2
            ws.send_json({"type": "cancel_stability"})
            ws.send_json({"type": "pause"})
            ws.send_json({"type": "set", "values": {"speed": speed}})
            while True:
                answer = recv(ws)        # a closed socket raises here: the session was lost
                if answer["type"] == "error":
                    text = answer["message"]
                    assert isinstance(text, str) and text, answer
                    # a crash report, not an answer: "set failed: OverflowError: ..."
                    assert not re.search(r"(failed|could not read that message).*Error", text), \
                        (data[:200], answer)
                    assert answer["field"] is None or isinstance(answer["field"], str)
                if answer["type"] == "settings" and answer["values"]["speed"] == speed:
                    break
        except Exception:
            fuzz_link.lost()          # the next example starts a new session
            raise

    one()


@pytest.fixture
def worker():
    """A session's worker driven by hand (no thread, no clock waited on), its session made."""
    from backprop.lab.server import _Worker

    loop = asyncio.new_event_loop()
    worker = _Worker(loop, 10.0, {"diagnostics": False})
    try:
        worker._ensure_session()
        yield worker
    finally:
        worker.stopped.set()
        if worker.session is not None:
            worker.session.close()
        loop.close()


def test_a_divergence_found_while_drawing_a_frame_stops_training(worker):
    """The doctor's verdict can come while a frame is drawn (LabSession.snapshot), not in a
    training step: it stops training all the same, so the banner's reset does not set the
    session training again on its own (the page's Play would then pause it: a flaky browser
    test found this)."""
    session = worker.session
    worker._do_play()
    session.step(3)
    verdict = session._diverged_record(session.step_count, "doctor")

    def doctor_says_diverged():
        session.diverged = verdict
    session._update_findings = doctor_says_diverged    # as the doctor would, in snapshot
    worker._maybe_frame(force=True)
    assert worker.running is False
    messages = [json.loads(m) for m in iter(worker.take, None)]
    assert {"type": "status", "running": False, "step": 3} in messages
    assert [m["running"] for m in messages if m["type"] == "state"] == [False]
    del session._update_findings
    worker._do_reset(0.01)
    worker.last_tick -= 10.0                             # ten seconds' worth of steps due
    worker._train()
    assert worker.running is False and session.step_count == 0


def test_a_reset_after_a_change_trains_at_the_set_speed(worker):
    """A change marks the step count it waits past for its own step; a reset starts again
    at step 0, so the mark is dropped: otherwise every look at the commands (each 50 ms)
    would train a step until the count passed the old mark, far above 1 step a second."""
    session = worker.session
    worker._do_set({"speed": 1})
    worker._do_play()
    session.step(30)
    worker._do_set({"lr": 0.01})            # waits for its own step past step 30
    worker._do_reset()
    assert session.step_count == 0 and not worker._change_waits()
    for _ in range(3):                       # no time passes: no step is due
        worker.last_tick = time.monotonic()
        worker.change_step_at = -float("inf")
        worker._train()
    assert session.step_count == 0


def test_a_changed_setting_trains_at_once_and_its_frame_goes_out_at_once(worker):
    """Driven by hand, no clock waited on: at 1 step a second, a learning-rate change trains
    one step with it at once (borrowed from the next: the allowance goes below 0, so the
    average speed holds) and the frame with it goes out without waiting for its slot; so does
    each change after it, one step per change at most every _CHANGE_STEP_GAP_S."""
    from backprop.lab.server import _CHANGE_STEP_GAP_S

    session = worker.session
    worker._do_set({"speed": 1})
    worker._do_play()
    worker._maybe_frame(force=True)
    while worker.take() is not None:
        pass
    step = session.step_count
    worker.last_tick = time.monotonic()  # no time passes below: no step is due
    worker.last_frame = -float("inf")    # and the last frame went out long ago
    worker._do_set({"lr": 0.01})
    worker._train()
    assert session.step_count == step + 1 and worker.allowance < 0
    assert worker._change_trained() is True          # its frame is due now...
    worker._maybe_frame(force=True)
    frames = [m for m in iter(worker.take, None) if json.loads(m)["type"] == "state"]
    frame = json.loads(frames[-1])
    assert frame["settings"]["lr"] == 0.01 and frame["step"] > frame["settings_step"]
    assert worker._change_trained() is False          # ...once
    # A second change right after the first (a dragged slider) waits for the gap between
    # change steps to pass (set in the future here: no clock is waited on), and the
    # loop's timeout wakes it no later than that; its frame waits for its step.
    worker.change_step_at = time.monotonic() + 3600.0
    worker._do_set({"lr": 0.02})
    worker._train()
    assert session.step_count == step + 1
    worker.last_frame = -float("inf")
    assert worker._change_trained() is False
    worker.change_step_at = time.monotonic()  # the last change step: just now
    assert worker._timeout() <= _CHANGE_STEP_GAP_S  # not the next step's ~1 s at 1 step/s
    # Once the gap is over it trains its own step too, though the first is not repaid:
    # the debt stays one step at most, so the speed resumes after a burst of changes.
    worker.change_step_at = -float("inf")
    worker.last_tick = time.monotonic()
    worker._train()
    assert session.step_count == step + 2 and worker.allowance == -1.0
    assert worker._change_trained() is True
    worker._maybe_frame(force=True)
    frames = [m for m in iter(worker.take, None) if json.loads(m)["type"] == "state"]
    assert json.loads(frames[-1])["settings"]["lr"] == 0.02


def _map(ws, request: dict) -> tuple:
    """Send a stability map; its start, its cells and its done message."""
    ws.send_json({"type": "stability_map", **request})
    start = until(ws, of_type("stability_start"))
    got = []
    while True:
        m = until(ws, lambda m: m["type"] in ("stability_cell", "stability_done"))
        if m["type"] == "stability_done":
            return start, got, m
        got.append(m)


def test_stability_maps_over_other_axes_and_from_the_cache():
    app = create_app(stability_workers=1)
    with TestClient(app) as c, c.websocket_connect("/ws") as ws:
        pool = app.state.stability_pool
        submitted = []
        real_submit = pool.submit
        pool.submit = lambda function, jobs, cancel=None: (
            submitted.append(len(jobs)) or real_submit(function, jobs, cancel))
        hello(ws, {"dataset": "sine", "n_samples": 60, "optimizer": "momentum"})
        request = {"lrs": [0.01, 10], "axis": "depth", "values": [0, 1], "steps": 10}
        start, first, done = _map(ws, request)
        assert start == {"type": "stability_start", "lrs": [0.01, 10.0], "axis": "depth",
                         "values": [0, 1], "steps": 10}
        assert done == {"type": "stability_done", "cells": 4, "cancelled": False}
        assert sorted((c["axis"], c["value"], c["i"], c["j"]) for c in first) == \
            sorted(("depth", v, i, j) for i in (0, 1) for j, v in enumerate([0, 1]))
        assert submitted == [4]
        # the same map again: every cell from the server's cache, no job runs
        start, again, done = _map(ws, request)
        assert submitted == [4] and done["cells"] == 4
        place = lambda cells: {(c["i"], c["j"]): c for c in cells}   # noqa: E731
        assert place(again) == place(first)
        # the older form: batch_sizes alone, a batch-size map
        start, cells, _ = _map(ws, {"lrs": [0.01], "batch_sizes": [4], "steps": 10})
        assert (start["axis"], start["values"], start["batch_sizes"]) == ("batch_size", [4], [4])
        assert cells[0]["axis"] == "batch_size" and cells[0]["value"] == 4
        assert submitted == [4, 1]
        # momentum: this optimiser's momentum; a bad value is refused naming the field
        start, cells, _ = _map(ws, {"lrs": [0.01], "axis": "momentum", "values": [0.5],
                                    "steps": 10})
        assert cells[0]["value"] == 0.5 and submitted == [4, 1, 1]
        ws.send_json({"type": "stability_map", "axis": "depth", "values": [9]})
        error = until(ws, of_type("error"))
        assert error["field"] == "values" and "depth must be between 0 and 6" in error["message"]
        ws.send_json({"type": "set", "values": {"optimizer": "sgd"}})
        ws.send_json({"type": "stability_map", "axis": "momentum"})
        error = until(ws, of_type("error"))
        assert error["field"] == "axis" and "sgd has none" in error["message"]
