"""Tools of a camper van's control board: the LED light zones, the water pump, the diesel air
heater, the compressor fridge/freezer, the leisure battery and solar monitor, the tank senders,
the roof vent with its fan, the 230 V inverter, a message channel to the owner's phone and a
travel log that can stamp the GPS position.

Written for the bench by hand, independently of any training data, the way a van owner who
tinkers with their own board writes tools: plain functions, type hints, Google-style
docstrings. The bench never executes them (it only asks the agent which call it would make), but
each one checks its input the way the board would and returns a small status dict.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

LIGHT_ZONES = ("ceiling", "kitchen", "bed", "reading", "awning")
READINGS = ("charge", "voltage", "solar_watts", "draw_amps", "hours_left")
TANKS = ("fresh", "grey", "lpg")
STOP_TYPES = ("overnight", "fuel", "water", "dump", "sight", "other")


def van_lights(zone: Literal["ceiling", "kitchen", "bed", "reading", "awning", "all"],
               on: bool,
               brightness: Annotated[Optional[int], {"minimum": 5, "maximum": 100}] = None
               ) -> dict:
    """Switch the van's LED lights on or off, zone by zone, optionally dimmed.

    Args:
        zone: Which lights: ceiling (the main cabin lights), kitchen (strip over the sink and
            hob), bed, reading (the lamp by the seats), awning (outside light over the side
            door), or all of them.
        on: True to switch the lights on, False to switch them off.
        brightness: Dimming level in percent, 5 to 100 (leave out to keep the last level).
    """
    if zone != "all" and zone not in LIGHT_ZONES:
        return {"error": f"no light zone {zone}"}
    if brightness is not None and not 5 <= brightness <= 100:
        return {"error": "brightness must be 5 to 100 percent"}
    zones = list(LIGHT_ZONES) if zone == "all" else [zone]
    return {"zones": zones, "on": on, "brightness_pct": brightness}


def water_pump(on: bool,
               seconds: Annotated[Optional[int], {"minimum": 10, "maximum": 1800}] = None
               ) -> dict:
    """Switch the 12 V fresh-water pump that feeds the taps and the shower.

    Args:
        on: True to switch the pump on, False to switch it off.
        seconds: Switch the pump off again by itself after this many seconds, 10 to 1800 (leave
            out to keep it on until switched off). Ignored when switching off.
    """
    if seconds is not None and not 10 <= seconds <= 1800:
        return {"error": "pump timer must be 10 to 1800 seconds"}
    if not on:
        return {"pump": "off"}
    return {"pump": "on", "auto_off_s": seconds}


def diesel_heater(on: bool,
                  target_c: Annotated[Optional[int], {"minimum": 8, "maximum": 30}] = None,
                  timer_minutes: Annotated[Optional[int], {"minimum": 10, "maximum": 720}]
                  = None) -> dict:
    """Start or stop the diesel air heater that warms the living area.

    Args:
        on: True to start the heater, False to stop it (it runs its cool-down cycle first).
        target_c: Cabin temperature to hold, in degrees Celsius, 8 to 30 (leave out to keep
            the last setting).
        timer_minutes: Stop by itself after this many minutes, 10 to 720 (leave out to run
            until stopped). Ignored when stopping.
    """
    if target_c is not None and not 8 <= target_c <= 30:
        return {"error": "target must be 8 to 30 degrees C"}
    if timer_minutes is not None and not 10 <= timer_minutes <= 720:
        return {"error": "timer must be 10 to 720 minutes"}
    if not on:
        return {"heater": "cooling down"}
    return {"heater": "starting", "target_c": target_c, "stop_after_min": timer_minutes}


def fridge(celsius: Annotated[int, {"minimum": -20, "maximum": 10}],
           compartment: Literal["fridge", "freezer"] = "fridge",
           eco: bool = False) -> dict:
    """Set the temperature of the compressor fridge or of its freezer compartment.

    Args:
        celsius: Target temperature in degrees Celsius: 0 to 10 for the fridge, -20 to -10 for
            the freezer.
        compartment: fridge (the default) or freezer.
        eco: Run the compressor in eco mode (slower and quieter, less current); default off.
    """
    if compartment not in ("fridge", "freezer"):
        return {"error": f"no compartment {compartment}"}
    lo, hi = (0, 10) if compartment == "fridge" else (-20, -10)
    if not lo <= celsius <= hi:
        return {"error": f"{compartment} must be {lo} to {hi} degrees C"}
    return {"compartment": compartment, "target_c": celsius, "eco": eco}


def power_reading(reading: Literal["charge", "voltage", "solar_watts", "draw_amps",
                                   "hours_left"],
                  battery: Literal["leisure", "starter"] = "leisure") -> dict:
    """Read the battery monitor and solar charge controller as they are right now.

    Args:
        reading: What to read: charge (state of charge in percent), voltage (volts),
            solar_watts (what the panels are putting in, in watts), draw_amps (current being
            used, in amps) or hours_left (time until the battery is flat at the current draw).
        battery: Which battery charge and voltage are read from: leisure (the default, the
            living-area battery) or starter (the engine battery).
    """
    if reading not in READINGS:
        return {"error": f"no reading {reading}"}
    if battery not in ("leisure", "starter"):
        return {"error": f"no battery {battery}"}
    units = {"charge": "%", "voltage": "V", "solar_watts": "W", "draw_amps": "A",
             "hours_left": "h"}
    return {"reading": reading, "battery": battery, "value": None, "unit": units[reading]}


def tank_level(tank: Literal["fresh", "grey", "lpg"],
               unit: Literal["percent", "litres"] = "percent") -> dict:
    """Read how full one of the van's tanks is right now.

    Args:
        tank: Which tank: fresh (drinking water), grey (waste water from sink and shower) or
            lpg (the gas tank for the hob).
        unit: Answer in percent (the default) or in litres.
    """
    if tank not in TANKS:
        return {"error": f"no tank {tank}"}
    if unit not in ("percent", "litres"):
        return {"error": f"no unit {unit}"}
    return {"tank": tank, "level": None, "unit": "%" if unit == "percent" else "L"}


def roof_vent(open: bool,
              fan_speed: Annotated[Optional[int], {"minimum": 1, "maximum": 10}] = None,
              direction: Literal["exhaust", "intake"] = "exhaust") -> dict:
    """Open or close the roof vent over the living area and run its fan.

    Args:
        open: True to open the vent lid, False to close it (closing also stops the fan).
        fan_speed: Run the vent fan at this speed, 1 (slowest) to 10 (full); the fan only runs
            with the lid open (leave out to keep the fan off).
        direction: exhaust (the default: blows air out) or intake (pulls fresh air in).
    """
    if fan_speed is not None and not 1 <= fan_speed <= 10:
        return {"error": "fan speed must be 1 to 10"}
    if direction not in ("exhaust", "intake"):
        return {"error": f"no direction {direction}"}
    if not open:
        return {"vent": "closed", "fan": 0}
    return {"vent": "open", "fan": fan_speed or 0, "direction": direction}


def inverter_230v(on: bool,
                  auto_off_minutes: Annotated[Optional[int], {"minimum": 5, "maximum": 480}]
                  = None) -> dict:
    """Switch the inverter that powers the 230 V sockets from the leisure battery.

    Args:
        on: True to switch the inverter on, False to switch it off.
        auto_off_minutes: Switch off again by itself after this many minutes, 5 to 480 (leave
            out to stay on until switched off). Ignored when switching off.
    """
    if auto_off_minutes is not None and not 5 <= auto_off_minutes <= 480:
        return {"error": "auto-off must be 5 to 480 minutes"}
    if not on:
        return {"inverter": "off"}
    return {"inverter": "on", "auto_off_min": auto_off_minutes}


def ping_phone(text: str, urgent: bool = False) -> dict:
    """Send a text message to the owner's phone over the board's 4G modem.

    Args:
        text: The message to send.
        urgent: Mark it urgent so the phone rings even when on silent (default: a normal
            message).
    """
    if not text.strip():
        return {"error": "empty message"}
    if len(text) > 160:
        return {"error": "message longer than 160 characters"}
    return {"sent": True, "urgent": urgent, "chars": len(text)}


def log_stop(note: str,
             stop_type: Literal["overnight", "fuel", "water", "dump", "sight", "other"]
             = "other",
             save_position: bool = True) -> dict:
    """Write an entry in the travel log, stamped with the date and, by default, the van's GPS
    position.

    Args:
        note: The text of the entry.
        stop_type: What kind of stop it is: overnight, fuel, water (filled up the fresh tank),
            dump (emptied grey water or toilet), sight, or other (the default).
        save_position: Stamp the entry with the current GPS position (default True).
    """
    if not note.strip():
        return {"error": "empty note"}
    if stop_type not in STOP_TYPES:
        return {"error": f"no stop type {stop_type}"}
    return {"logged": note.strip(), "stop_type": stop_type, "gps": save_position}


TOOLS = [van_lights, water_pump, diesel_heater, fridge, power_reading, tank_level, roof_vent,
         inverter_230v, ping_phone, log_stop]
