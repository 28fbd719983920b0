"""The small offline toolset `edge-runtime agent` uses when no --tools module is given.

Nothing here touches the network or the hardware: timers and lights are recorded in memory,
weather comes from a canned table, so a demo run is repeatable on any board.
"""
from __future__ import annotations

from typing import Annotated, Literal

_WEATHER = {
    "paris": {"condition": "cloudy", "temperature_c": 14},
    "london": {"condition": "rain", "temperature_c": 11},
    "tokyo": {"condition": "sunny", "temperature_c": 22},
    "new york": {"condition": "windy", "temperature_c": 9},
    "berlin": {"condition": "overcast", "temperature_c": 12},
}
TIMERS: list = []
LIGHTS: dict = {}


def set_timer(minutes: Annotated[int, {"minimum": 1, "maximum": 1440}],
              label: str = "timer") -> dict:
    """Start a countdown timer.

    Args:
        minutes: How many minutes the timer runs.
        label: A short name for the timer.
    """
    if minutes <= 0:
        raise ValueError("minutes must be positive")
    TIMERS.append({"minutes": minutes, "label": label})
    return {"status": "started", "minutes": minutes, "label": label}


def toggle_light(room: str, on: bool) -> dict:
    """Switch the lights of a room on or off.

    Args:
        room: The room, e.g. kitchen or bedroom.
        on: True to switch on, False to switch off.
    """
    LIGHTS[room.lower()] = on
    return {"room": room, "state": "on" if on else "off"}


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
    """Get the current weather for a city (offline sample data).

    Args:
        city: The city name, e.g. Paris.
        unit: The temperature unit.
    """
    w = _WEATHER.get(city.strip().lower())
    if w is None:
        return {"error": f"no weather data for {city}"}
    t = w["temperature_c"]
    return {"city": city, "condition": w["condition"],
            "temperature": t if unit == "celsius" else round(t * 9 / 5 + 32), "unit": unit}


TOOLS = [set_timer, toggle_light, get_weather]
