"""Everyday requests to the built-in tools on the real default model (issue 11's target: at
least 9 of 10 call the right tool with the right values). The requests are written for this
test in varied phrasing; none comes from a benchmark. Each outcome is printed (pytest -s)."""
import pytest

from edge_runtime import tools_builtin
from edge_runtime.agent import Agent

pytestmark = pytest.mark.model


def _lower(v):
    return v.strip().lower() if isinstance(v, str) else v


# (request, tool, key values the call must carry; a value may list acceptable spellings)
CASES = [
    ("turn off the bedroom lights", "toggle_light", {"room": ["bedroom"], "on": False}),
    ("is it raining in London?", "get_weather", {"city": ["london"]}),
    ("start a 15 minute timer for the pasta", "set_timer", {"minutes": 15}),
    ("Switch the kitchen light on please", "toggle_light", {"room": ["kitchen"], "on": True}),
    ("How warm is it in Tokyo right now, in fahrenheit?", "get_weather",
     {"city": ["tokyo"], "unit": "fahrenheit"}),
    ("remind me in 45 minutes to call mum", "set_timer", {"minutes": 45}),
    ("Lights on in the living room", "toggle_light",
     {"room": ["living room", "living"], "on": True}),
    ("what's the weather like in Berlin today", "get_weather", {"city": ["berlin"]}),
    ("I need a 3 minute timer for my tea", "set_timer", {"minutes": 3}),
    ("Could you switch off the garage light?", "toggle_light", {"room": ["garage"], "on": False}),
    ("Will I need an umbrella in Paris?", "get_weather", {"city": ["paris"]}),
    ("set an egg timer, 7 minutes", "set_timer", {"minutes": 7}),
]


def _matches(call, tool, want) -> bool:
    if call is None or call["name"] != tool:
        return False
    args = call["arguments"]
    for key, expected in want.items():
        got = _lower(args.get(key))
        ok = got in expected if isinstance(expected, list) else got == expected
        if not ok or (isinstance(expected, bool) and not isinstance(got, bool)):
            return False
    return True


@pytest.fixture(scope="module")
def model(default_model):
    import edge_runtime as er
    return er.Model.load(default_model)


def test_everyday_requests_call_the_right_builtin_tool(model):
    agent = Agent(model, tools_builtin.TOOLS)     # the format chosen for the model
    right = []
    for request, tool, want in CASES:
        r = agent.run(request, max_steps=1)
        call = r.calls[0] if r.calls else None
        ok = _matches(call, tool, want)
        right.append(ok)
        shown = f"{call['name']}({call['arguments']})" if call else "no call"
        print(f"[{'ok' if ok else 'WRONG'}] {request!r} -> {shown}; answer {r.text!r}")
    print(f"{sum(right)}/{len(CASES)} right ({agent.format.name} format)")
    # the target, scaled to this test's case count: >= 90% right
    assert sum(right) >= -(-9 * len(CASES) // 10), f"{sum(right)}/{len(CASES)} right"


def test_the_default_model_decides_with_the_shipped_adapter_s_call_bias(model):
    """The bias was chosen for the shipped adapter on the generator's dev split; the merged
    model carries it, and an agent on it decides with it."""
    from edge_runtime import adapter, models
    shipped = adapter.read(models.DEFAULT_ADAPTER).call_bias
    assert shipped is not None
    assert Agent(model, tools_builtin.TOOLS).call_bias == pytest.approx(shipped)
