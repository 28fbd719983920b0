"""A small home-automation toolset, written the way firmware people write their own tools:
plain functions, type hints, Google-style docstrings. The bench never executes them (it only
asks the agent which call it would make), but they are real tools: each checks its input the
way a device would and returns a small status dict.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

DOORS = ("front", "back", "garage", "patio")


def set_thermostat(temperature: Annotated[float, {"minimum": 5, "maximum": 35}],
                   mode: Literal["heat", "cool", "auto"] = "auto") -> dict:
    """Set the heating/cooling target temperature of the house.

    Args:
        temperature: Target temperature in degrees Celsius.
        mode: heat, cool, or auto (the thermostat decides).
    """
    return {"target_c": temperature, "mode": mode}


def lock_door(door: Literal["front", "back", "garage", "patio"], locked: bool = True) -> dict:
    """Lock or unlock one of the house doors.

    Args:
        door: Which door: front, back, garage or patio.
        locked: True to lock the door, False to unlock it.
    """
    return {"door": door, "state": "locked" if locked else "unlocked"}


def add_to_shopping_list(item: str, quantity: Annotated[int, {"minimum": 1, "maximum": 99}] = 1
                         ) -> dict:
    """Put an item on the family shopping list.

    Args:
        item: What to buy, e.g. milk.
        quantity: How many to buy.
    """
    return {"added": item, "quantity": quantity}


def send_sms(recipient: str, message: str) -> dict:
    """Send a text message to a contact.

    Args:
        recipient: Name of the contact, as saved in the phone book.
        message: The text to send.
    """
    if not message.strip():
        return {"error": "empty message"}
    return {"to": recipient, "sent": True, "chars": len(message)}


def create_reminder(text: str,
                    time: Annotated[str, {"pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}]) -> dict:
    """Create a reminder that goes off later today.

    Args:
        text: What to be reminded of.
        time: When, as 24-hour HH:MM, e.g. 18:30.
    """
    return {"reminder": text, "at": time}


def water_zone(zone: Annotated[int, {"minimum": 1, "maximum": 8}],
               seconds: Annotated[int, {"minimum": 1, "maximum": 3600}]) -> dict:
    """Open the garden sprinkler valve of one zone for a while.

    Args:
        zone: Sprinkler zone number, 1 to 8.
        seconds: How long to water, in seconds.
    """
    return {"zone": zone, "watering_s": seconds}


def play_music(query: str, shuffle: bool = False) -> dict:
    """Play music on the living-room speaker.

    Args:
        query: An artist, album, song, genre or playlist name.
        shuffle: Play in random order.
    """
    return {"playing": query, "shuffle": shuffle}


def set_light(room: str, on: bool,
              brightness: Annotated[Optional[int], {"minimum": 0, "maximum": 100}] = None
              ) -> dict:
    """Switch the lights of a room on or off, optionally dimmed.

    Args:
        room: The room, e.g. kitchen, bedroom, living room.
        on: True for on, False for off.
        brightness: Brightness in percent, 0 to 100 (leave out to keep the current level).
    """
    return {"room": room, "on": on, "brightness": brightness}


def get_weather(city: str) -> dict:
    """Get the current weather and today's forecast for a city.

    Args:
        city: The city name.
    """
    return {"city": city, "condition": "unknown"}


def set_timer(minutes: Annotated[int, {"minimum": 1, "maximum": 600}],
              label: Optional[str] = None) -> dict:
    """Start a kitchen countdown timer.

    Args:
        minutes: Duration in minutes.
        label: A name for the timer, e.g. pasta.
    """
    return {"minutes": minutes, "label": label}


def start_vacuum(room: Optional[str] = None) -> dict:
    """Send the robot vacuum cleaner out to clean.

    Args:
        room: Only clean this room (leave out to clean the whole flat).
    """
    return {"cleaning": room or "everywhere"}


TOOLS = [set_thermostat, lock_door, add_to_shopping_list, send_sms, create_reminder,
         water_zone, play_music, set_light, get_weather, set_timer, start_vacuum]
