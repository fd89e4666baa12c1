"""Incoming lab messages: parsing, size limits and field checks."""
import json

import pytest

from backprop.lab.protocol import (
    MAX_CSV_MESSAGE_BYTES, MAX_MESSAGE_BYTES, MESSAGE_TYPES, Command, ProtocolError, dumps,
    parse_message,
)


def msg(**fields) -> str:
    return json.dumps(fields)


@pytest.mark.parametrize("kind", ["play", "pause", "step", "cancel_stability"])
def test_plain_commands(kind):
    assert parse_message(msg(type=kind)) == Command(kind, {})
    with pytest.raises(ProtocolError, match=f"{kind} message: unexpected field 'x'; it takes "
                                            f"no fields") as e:
        parse_message(msg(type=kind, x=1))
    assert e.value.field == "x"


def test_hello_and_set():
    assert parse_message(msg(type="hello")).args == {"settings": None}
    hello = parse_message(msg(type="hello", settings={"lr": 0.1, "hidden": [4]}))
    assert hello.args == {"settings": {"lr": 0.1, "hidden": [4]}}
    assert parse_message(msg(type="set", values={"lr": 0.5})) == \
        Command("set", {"values": {"lr": 0.5}})
    with pytest.raises(ProtocolError, match="set message needs values"):
        parse_message(msg(type="set"))
    with pytest.raises(ProtocolError, match="values must be an object of setting: value, got list"):
        parse_message(msg(type="set", values=[["lr", 0.5]]))
    with pytest.raises(ProtocolError, match="set message has no values"):
        parse_message(msg(type="set", values={}))
    with pytest.raises(ProtocolError, match="settings must be an object"):
        parse_message(msg(type="hello", settings="lr=0.1"))


@pytest.mark.parametrize("raw, pattern", [
    ("{not json", "message is not valid JSON"),
    ("[1, 2]", "message must be a JSON object with a type, got list"),
    ('"play"', "message must be a JSON object with a type, got str"),
    (msg(kind="play"), "unknown message type 'NoneType'"),
    (msg(type="launch_missiles"), "unknown message type 'launch_missiles'; known types are "
                                  + ", ".join(MESSAGE_TYPES)),
    (msg(type=["play"]), "unknown message type 'list'"),
    (b"\xff\xfe", "messages must be UTF-8 JSON text"),
])
def test_malformed(raw, pattern):
    with pytest.raises(ProtocolError, match=pattern):
        parse_message(raw)


def test_bytes_are_accepted():
    assert parse_message(msg(type="play").encode()).type == "play"
    with pytest.raises(ProtocolError, match="must be JSON text, got int"):
        parse_message(5)


def test_size_limits():
    big_set = msg(type="set", values={"lr": 0.1}, pad="x" * MAX_MESSAGE_BYTES)
    with pytest.raises(ProtocolError, match=f"set message of {len(big_set)} bytes is too big "
                                            f"\\(at most {MAX_MESSAGE_BYTES} bytes\\)"):
        parse_message(big_set)
    text = "0.1,0.2,1\n" * ((MAX_MESSAGE_BYTES // 10) * 4)        # ~64 KB: fine for a CSV
    assert parse_message(msg(type="upload_csv", text=text)).args == {"text": text}
    huge = msg(type="upload_csv", text="x" * MAX_CSV_MESSAGE_BYTES)
    with pytest.raises(ProtocolError, match="too big"):
        parse_message(huge)


def test_stability_map_fields():
    none = {"lrs": None, "batch_sizes": None, "steps": None, "axis": None, "values": None}
    assert parse_message(msg(type="stability_map")).args == none
    cmd = parse_message(msg(type="stability_map", lrs=[0.01, 1], batch_sizes=[4.0, 16],
                            steps=50))
    assert cmd.args == {**none, "lrs": [0.01, 1.0], "batch_sizes": [4, 16], "steps": 50}
    cmd = parse_message(msg(type="stability_map", axis="init", values=["he", "too_small"]))
    assert cmd.args == {**none, "axis": "init", "values": ["he", "too_small"]}
    cmd = parse_message(msg(type="stability_map", axis="depth", values=[0, 2]))
    assert cmd.args["values"] == [0, 2]
    for fields, pattern, field in [
            ({"lrs": []}, "lrs must be a non-empty list", "lrs"),
            ({"lrs": ["a"]}, "lrs must hold numbers, got 'a'", "lrs"),
            ({"batch_sizes": [1.5]}, "batch_sizes must hold integers", "batch_sizes"),
            ({"lrs": [0.1] * 65}, "lrs has 65 entries; at most 64", "lrs"),
            ({"steps": "many"}, "steps must be an integer", "steps"),
            ({"axis": "width"}, "axis must be one of batch_size, init, depth, momentum, got "
                                "'width'", "axis"),
            ({"axis": 3}, "axis must be one of", "axis"),
            ({"values": []}, "values must be a non-empty list", "values"),
            ({"values": [0.1] * 65}, "values has 65 entries; at most 64", "values"),
            ({"values": [[1]]}, "values must hold numbers, got \\[1\\]", "values"),
            ({"values": ["x" * 41]}, "values must hold numbers", "values"),
            ({"values": [float("nan")]}, "values must hold numbers", "values")]:
        with pytest.raises(ProtocolError, match=pattern) as e:
            parse_message(msg(type="stability_map", **fields))
        assert e.value.field == field


def test_upload_and_export_fields():
    with pytest.raises(ProtocolError, match="upload_csv message needs text") as e:
        parse_message(msg(type="upload_csv", text=5))
    assert e.value.field == "text"
    assert parse_message(msg(type="upload_csv", text="a", name="d.csv")).args == {"text": "a"}
    assert parse_message(msg(type="export", what="checkpoint")).args == {"what": "checkpoint"}
    with pytest.raises(ProtocolError, match="export what must be 'script' or 'checkpoint', got "
                                            "'weights'"):
        parse_message(msg(type="export", what="weights"))


def test_dumps_writes_null_for_nonfinite():
    assert json.loads(dumps({"a": [1.0, float("nan")], "b": {"c": float("inf")}})) == \
        {"a": [1.0, None], "b": {"c": None}}
    assert dumps({"type": "play"}) == '{"type":"play"}'


def test_deeply_nested_json_is_refused_with_a_protocol_error():
    # json.loads raises RecursionError here, which is not a ValueError: it must not escape
    with pytest.raises(ProtocolError, match="nested too deeply"):
        parse_message("[" * 100_000)


def test_huge_integers_are_checked_without_overflow():
    huge = "9" * 400          # json.loads makes an exact int of it
    for field, pattern in [("lrs", "lrs must hold numbers of at most 1e308, got an integer of "
                                   "400 digits")]:
        with pytest.raises(ProtocolError, match=pattern) as e:
            parse_message(f'{{"type": "stability_map", "{field}": [0.1, {huge}]}}')
        assert e.value.field == field
    # integers stay exact ints: the session's range check names them
    cmd = parse_message(f'{{"type": "stability_map", "batch_sizes": [{huge}], "steps": {huge}}}')
    assert cmd.args["steps"] == int(huge) and cmd.args["batch_sizes"] == [int(huge)]
    for raw, field in [('{"type": "stability_map", "steps": 1e400}', "steps"),     # inf
                       ('{"type": "stability_map", "steps": NaN}', "steps"),
                       ('{"type": "stability_map", "lrs": [Infinity]}', "lrs"),
                       ('{"type": "stability_map", "batch_sizes": [-Infinity]}', "batch_sizes")]:
        with pytest.raises(ProtocolError, match=f"^{field} must") as e:
            parse_message(raw)
        assert e.value.field == field


def test_long_values_are_quoted_short():
    with pytest.raises(ProtocolError) as e:
        parse_message(msg(type="export", what="w" * 10_000))
    assert e.value.field == "what" and len(str(e.value)) < 200
    with pytest.raises(ProtocolError) as e:
        parse_message(msg(type="play", **{"z" * 10_000: 1}))
    assert len(str(e.value)) < 200
