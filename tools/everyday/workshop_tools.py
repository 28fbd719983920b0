"""Tools of a hobbyist's greenhouse-and-garage controller board: a relay board with irrigation
pumps, vent actuators, fans, shelf grow lights and heaters, a few sensors, cameras, a garage door
opener, a push channel to the owner's phone and a logbook on the SD card.

Written for the bench by hand, independently of any training data, the way firmware people write
their own tools: plain functions, type hints, Google-style docstrings. The bench never executes
them (it only asks the agent which call it would make), but each one checks its input the way
the board would and returns a small status dict.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

SENSORS = ("greenhouse_temp", "greenhouse_humidity", "soil_moisture", "water_tank_level",
           "garage_temp", "outdoor_temp")
PUMPS = (1, 2, 3)
SHELVES = ("top", "middle", "bottom")


def read_sensor(sensor: Literal["greenhouse_temp", "greenhouse_humidity", "soil_moisture",
                                "water_tank_level", "garage_temp", "outdoor_temp"],
                average_minutes: Annotated[Optional[int], {"minimum": 1, "maximum": 1440}] = None
                ) -> dict:
    """Read one of the board's sensors: temperatures in degrees Celsius, humidity, soil moisture
    and water tank level in percent.

    Args:
        sensor: Which sensor: greenhouse_temp, greenhouse_humidity, soil_moisture (greenhouse
            beds), water_tank_level (rain-water tank), garage_temp or outdoor_temp.
        average_minutes: Return the average over the last this many minutes instead of the
            current reading (leave out for the reading right now).
    """
    if sensor not in SENSORS:
        return {"error": f"no sensor {sensor}"}
    if average_minutes is not None and not 1 <= average_minutes <= 1440:
        return {"error": "average window must be 1 to 1440 minutes"}
    unit = "C" if sensor.endswith("_temp") else "%"
    return {"sensor": sensor, "value": None, "unit": unit, "window_min": average_minutes}


def run_pump(pump: Annotated[int, {"minimum": 1, "maximum": 3}],
             seconds: Annotated[int, {"minimum": 5, "maximum": 1800}] = 60) -> dict:
    """Run one of the irrigation pumps that water the greenhouse beds from the rain-water tank,
    then switch it off again.

    Args:
        pump: Pump number, 1 to 3 (1 = tomato bed, 2 = cucumber bed, 3 = seedling benches).
        seconds: How long to run the pump, in seconds (5 to 1800, default 60).
    """
    if pump not in PUMPS:
        return {"error": f"no pump {pump}"}
    if not 5 <= seconds <= 1800:
        return {"error": "run time must be 5 to 1800 seconds"}
    return {"pump": pump, "running_s": seconds}


def set_vent(vent: Literal["roof", "side"], open: bool = True,
             percent: Annotated[int, {"minimum": 10, "maximum": 100}] = 100) -> dict:
    """Open or close one of the motorised greenhouse vents.

    Args:
        vent: Which vent: the roof vent or the side vent.
        open: True to open the vent, False to close it.
        percent: How far to open it, in percent of full travel (10 to 100, default 100:
            fully open); ignored when closing.
    """
    if vent not in ("roof", "side"):
        return {"error": f"no vent {vent}"}
    if not 10 <= percent <= 100:
        return {"error": "opening must be 10 to 100 percent"}
    return {"vent": vent, "position_pct": percent if open else 0}


def set_fan(fan: Literal["greenhouse", "garage"],
            speed: Annotated[int, {"minimum": 0, "maximum": 100}],
            minutes: Annotated[Optional[int], {"minimum": 1, "maximum": 240}] = None) -> dict:
    """Set the speed of the greenhouse circulation fan or the garage extractor fan.

    Args:
        fan: Which fan: greenhouse or garage.
        speed: Fan speed in percent, 0 to 100; 0 switches the fan off.
        minutes: Run at this speed for this many minutes, then stop (leave out to keep running).
    """
    if fan not in ("greenhouse", "garage"):
        return {"error": f"no fan {fan}"}
    if not 0 <= speed <= 100:
        return {"error": "speed must be 0 to 100 percent"}
    return {"fan": fan, "speed_pct": speed, "stop_after_min": minutes}


def set_grow_lights(on: bool,
                    brightness: Annotated[Optional[int], {"minimum": 5, "maximum": 100}] = None,
                    shelf: Literal["top", "middle", "bottom", "all"] = "all") -> dict:
    """Switch the LED grow lights over the seedling shelves on or off, optionally dimmed.

    Args:
        on: True to switch the lights on, False to switch them off.
        brightness: Brightness in percent, 5 to 100 (leave out to keep the last level).
        shelf: Which shelf: top, middle, bottom, or all of them (the default).
    """
    if shelf != "all" and shelf not in SHELVES:
        return {"error": f"no shelf {shelf}"}
    if brightness is not None and not 5 <= brightness <= 100:
        return {"error": "brightness must be 5 to 100 percent"}
    shelves = list(SHELVES) if shelf == "all" else [shelf]
    return {"shelves": shelves, "on": on, "brightness_pct": brightness}


def snap_photo(camera: Literal["greenhouse", "garage", "driveway"],
               send_to_phone: bool = False) -> dict:
    """Take a still photo with one of the cameras and save it on the SD card.

    Args:
        camera: Which camera: greenhouse, garage or driveway.
        send_to_phone: Also push the photo to the owner's phone (default: only save it).
    """
    if camera not in ("greenhouse", "garage", "driveway"):
        return {"error": f"no camera {camera}"}
    return {"camera": camera, "saved": True, "pushed": send_to_phone}


def push_to_phone(message: str, priority: Literal["low", "normal", "high"] = "normal") -> dict:
    """Send a push notification to the owner's phone.

    Args:
        message: The text of the notification.
        priority: low (silent), normal (the default), or high (rings even in
            do-not-disturb).
    """
    if not message.strip():
        return {"error": "empty message"}
    if len(message) > 128:
        return {"error": "message longer than 128 characters"}
    return {"sent": True, "priority": priority, "chars": len(message)}


def drive_garage_door(open: bool = True,
                      stop_at_percent: Annotated[Optional[int], {"minimum": 5, "maximum": 95}]
                      = None) -> dict:
    """Open or close the motorised garage door.

    Args:
        open: True to open the door, False to close it.
        stop_at_percent: Only open the door part of the way, in percent of full height (5 to
            95); leave out to open it fully. Ignored when closing.
    """
    if stop_at_percent is not None and not 5 <= stop_at_percent <= 95:
        return {"error": "partial opening must be 5 to 95 percent"}
    if not open:
        return {"door": "closing"}
    return {"door": "opening", "target_pct": stop_at_percent or 100}


def jot_logbook(entry: str,
                tag: Literal["planting", "harvest", "pests", "maintenance", "general"] = "general"
                ) -> dict:
    """Append a dated entry to the greenhouse logbook on the board's SD card.

    Args:
        entry: The text to write down.
        tag: Category of the entry: planting, harvest, pests, maintenance or general (the
            default).
    """
    if not entry.strip():
        return {"error": "empty entry"}
    return {"logged": entry.strip(), "tag": tag}


def hold_temperature(zone: Literal["greenhouse", "propagator", "garage"],
                     celsius: Annotated[int, {"minimum": 4, "maximum": 30}]) -> dict:
    """Set the temperature a heater keeps a zone at (heating only: the heater switches on below
    the target and off above it).

    Args:
        zone: Which heater: the greenhouse heater, the propagator heat mat or the garage heater.
        celsius: Target temperature in degrees Celsius, 4 to 30.
    """
    if zone not in ("greenhouse", "propagator", "garage"):
        return {"error": f"no heater in {zone}"}
    if not 4 <= celsius <= 30:
        return {"error": "target must be 4 to 30 degrees C"}
    return {"zone": zone, "target_c": celsius}


TOOLS = [read_sensor, run_pump, set_vent, set_fan, set_grow_lights, snap_photo, push_to_phone,
         drive_garage_door, jot_logbook, hold_temperature]
