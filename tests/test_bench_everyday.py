"""tools/bench_everyday.py's scorer on hand-made replies (no model), and its data (each set):
the requests parse, every expected call is valid for the declared tools, every tool is asked
for."""
import json
import os
import sys

import pytest

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")
sys.path.insert(0, TOOLS)

import bench_everyday as B  # noqa: E402
from edge_runtime.calls.schema import normalize_tool, schema_from_callable, validate  # noqa: E402


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


LIGHT = call("set_light", room="kitchen", on=True)
LOCK = call("lock_door", door="front", locked=False)


def test_the_right_call_scores_right():
    assert B.score_calls([LIGHT], [call("set_light", room="kitchen", on=True)])


def test_strings_ignore_case_and_surrounding_space_numbers_compare_as_numbers():
    assert B.score_calls([LIGHT], [call("set_light", room="  Kitchen ", on=True)])
    assert B.score_calls([call("set_thermostat", temperature=21)],
                         [call("set_thermostat", temperature=21.0)])
    assert not B.score_calls([call("set_thermostat", temperature=21)],
                             [call("set_thermostat", temperature=21.5)])


def test_a_bool_is_not_a_number_nor_a_string():
    assert not B.score_calls([LIGHT], [call("set_light", room="kitchen", on=1)])
    assert not B.score_calls([LIGHT], [call("set_light", room="kitchen", on="true")])


def test_a_wrong_value_scores_wrong():
    assert not B.score_calls([LIGHT], [call("set_light", room="bedroom", on=True)])
    assert not B.score_calls([LOCK], [call("lock_door", door="front", locked=True)])


def test_a_wrong_tool_scores_wrong():
    assert not B.score_calls([call("get_weather", city="Oslo")],
                             [call("play_music", query="Oslo")])


def test_a_missing_call_scores_wrong():
    two = [LIGHT, LOCK]
    assert not B.score_calls(two, [LIGHT])
    assert not B.score_calls(two, [])
    assert not B.score_calls([LIGHT], [])


def test_an_extra_call_scores_wrong():
    assert not B.score_calls([LIGHT], [LIGHT, LOCK])
    assert not B.score_calls([LIGHT], [LIGHT, LIGHT])


def test_two_calls_match_in_any_order_but_each_only_once():
    a, b = call("add_to_shopping_list", item="milk"), call("add_to_shopping_list", item="bread")
    assert B.score_calls([a, b], [b, a])
    assert not B.score_calls([a, b], [a, a])


def test_an_extra_argument_other_than_its_default_scores_wrong():
    assert not B.score_calls([LIGHT], [call("set_light", room="kitchen", on=True,
                                            brightness=40)])
    assert not B.score_calls([call("play_music", query="jazz")],
                             [call("play_music", query="jazz", shuffle=True)])
    assert not B.score_calls([LIGHT], [call("set_light", room="kitchen", on=True, colour="red")])


def test_an_argument_equal_to_its_default_may_be_given_or_left_out():
    # extra, equal to the default
    assert B.score_calls([call("play_music", query="jazz")],
                         [call("play_music", query="jazz", shuffle=False)])
    assert B.score_calls([call("start_vacuum")], [call("start_vacuum", room=None)])
    # expected explicitly (the request says so), left out by the reply
    assert B.score_calls([call("play_music", query="jazz", shuffle=False)],
                         [call("play_music", query="jazz")])
    assert B.score_calls([call("lock_door", door="back", locked=True)],
                         [call("lock_door", door="back")])


def test_a_missing_optional_argument_the_request_asked_for_scores_wrong():
    assert not B.score_calls([call("set_light", room="bedroom", on=True, brightness=30)],
                             [call("set_light", room="bedroom", on=True)])
    assert not B.score_calls([LOCK], [call("lock_door", door="front")])


def test_a_missing_required_argument_scores_wrong():
    assert not B.score_calls([LIGHT], [call("set_light", room="kitchen")])


def test_no_call_expected():
    assert B.score_calls([], [])
    assert not B.score_calls([], [call("get_weather", city="Tokyo")])


def test_summary_counts_per_kind():
    reqs = [{"request": "a", "kind": "single", "calls": [LIGHT]},
            {"request": "b", "kind": "no-call", "calls": []},
            {"request": "c", "kind": "no-call", "calls": []}]
    results = [(reqs[0], [LIGHT], None, 0.1), (reqs[1], [], None, 0.1),
               (reqs[2], [LOCK], None, 0.1)]
    s = B.summarize(results)
    assert s["single"] == (1, 1) and s["no-call"] == (1, 2) and s["all"] == (2, 3)


def test_run_scores_an_unreadable_call_as_no_call():
    class Agent:
        def respond(self, messages, tool_choice):
            assert messages == [{"role": "user", "content": "x"}] and tool_choice == "auto"
            raise RuntimeError("malformed call")

    (r, calls, err, _), = B.run(Agent(), [{"request": "x", "kind": "no-call", "calls": []}])
    assert calls == [] and "malformed" in err


def test_kind_is_derived_when_absent():
    assert B.kind_of([]) == "no-call"
    assert B.kind_of([LIGHT, LOCK]) == "two-action"
    assert B.kind_of([LIGHT]) == "single"
    assert B.kind_of([call("set_light", room="bedroom", on=True, brightness=30)]) == "optional"


# ---- the data (each toolset and its requests) -------------------------------------------

def _set(name):
    tools, path = B.toolset(name)
    schemas = {fn.__name__: normalize_tool(schema_from_callable(fn)) for fn in tools}
    return tools, path, B.load_requests(path, tools), schemas


SETS = {name: _set(name) for name in B.SETS}
CASES = [(name, r) for name, (_, _, reqs, _) in SETS.items() for r in reqs if r["calls"]]


@pytest.mark.parametrize("name", sorted(SETS))
def test_requests_parse_and_cover_every_kind(name):
    _, path, requests, _ = SETS[name]
    raw = [json.loads(x) for x in open(path) if x.strip()]
    assert len(raw) == len(requests) >= 70
    kinds = {k: sum(r["kind"] == k for r in requests) for k in B.KINDS}
    assert kinds["single"] >= 30 and kinds["two-action"] >= 10 and kinds["no-call"] >= 15 \
        and kinds["optional"] >= 8, kinds
    for r in requests:
        assert r["request"].strip()
        n = len(r["calls"])
        assert (r["kind"] == "no-call") == (n == 0) and (r["kind"] == "two-action") == (n == 2)
    assert len({r["request"] for r in requests}) == len(requests), "a request is repeated"


@pytest.mark.parametrize("name, r", CASES, ids=lambda x: x if isinstance(x, str) else x["request"])
def test_every_expected_call_is_valid_for_the_declared_tool(name, r):
    schemas = SETS[name][3]
    for c in r["calls"]:
        assert c["name"] in schemas, c
        assert validate(c["arguments"], schemas[c["name"]]["parameters"]) == [], c
        assert set(c["arguments"]) >= set(schemas[c["name"]]["parameters"]["required"])


@pytest.mark.parametrize("name", sorted(SETS))
def test_an_expected_call_scores_right_against_itself(name):
    tools, _, requests, _ = SETS[name]
    defaults = B.defaults_of(tools)
    for r in requests:
        assert B.score_calls(r["calls"], [dict(c) for c in reversed(r["calls"])], defaults), r


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_tool_is_asked_for(name):
    _, _, requests, schemas = SETS[name]
    used = {c["name"] for r in requests for c in r["calls"]}
    assert used == set(schemas), set(schemas) - used


@pytest.mark.parametrize("name", sorted(SETS))
def test_the_tools_are_plain_documented_functions(name):
    tools, _, _, schemas = SETS[name]
    for fn in tools:
        spec = schemas[fn.__name__]
        assert spec["description"], fn.__name__
        for prop_name, prop in spec["parameters"]["properties"].items():
            assert prop.get("description"), (fn.__name__, prop_name)
