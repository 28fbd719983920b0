"""Made-up tools for the training-data generator: tools no template in domains.py describes,
assembled from parts (a thing, an action on it, typed parameters and the words people use for
each). The templates are few (72), and a model taught on them alone learns those tools; these
are many, so it has to read each declaration. Each is a domains.T, so every kind of example in
data.py (a choice among tools, two calls, a refusal, a follow-up) can be made with it.

Things, names and values are split like the templates' pools: the dev split draws from its own.
"""
from __future__ import annotations

from .domains import CITIES, NAMES, P, T, dates, ints, split_pool, times

# (thing, plural, family); a family decides the actions and parameters that make sense
THINGS = [
    ("pump", "pumps", "device"), ("printer", "printers", "device"),
    ("projector", "projectors", "device"), ("heater", "heaters", "device"),
    ("dehumidifier", "dehumidifiers", "device"), ("air purifier", "air purifiers", "device"),
    ("kettle", "kettles", "device"), ("oven", "ovens", "device"),
    ("washing machine", "washing machines", "device"), ("dryer", "dryers", "device"),
    ("garage door", "garage doors", "device"), ("camera", "cameras", "device"),
    ("drone", "drones", "device"), ("robot arm", "robot arms", "device"),
    ("conveyor", "conveyors", "device"), ("generator", "generators", "device"),
    ("water heater", "water heaters", "device"), ("pool filter", "pool filters", "device"),
    ("pet feeder", "pet feeders", "device"), ("greenhouse vent", "greenhouse vents", "device"),
    ("coffee machine", "coffee machines", "device"), ("air conditioner", "air conditioners", "device"),
    ("humidifier", "humidifiers", "device"), ("router", "routers", "device"),
    ("ventilation fan", "ventilation fans", "device"), ("irrigation valve", "irrigation valves", "device"),
    ("ticket", "tickets", "record"), ("invoice", "invoices", "record"),
    ("task", "tasks", "record"), ("campaign", "campaigns", "record"),
    ("expense", "expenses", "record"), ("shipment", "shipments", "record"),
    ("bug report", "bug reports", "record"), ("sales lead", "sales leads", "record"),
    ("support case", "support cases", "record"), ("purchase order", "purchase orders", "record"),
    ("work order", "work orders", "record"), ("deployment", "deployments", "record"),
    ("backup job", "backup jobs", "record"), ("survey", "surveys", "record"),
    ("playlist", "playlists", "record"), ("inventory item", "inventory items", "record"),
    ("appointment", "appointments", "booking"), ("table", "tables", "booking"),
    ("conference room", "conference rooms", "booking"), ("tennis court", "tennis courts", "booking"),
    ("rental car", "rental cars", "booking"), ("haircut", "haircuts", "booking"),
    ("vet visit", "vet visits", "booking"), ("yoga class", "yoga classes", "booking"),
    ("delivery slot", "delivery slots", "booking"), ("parking space", "parking spaces", "booking"),
    ("boat tour", "boat tours", "booking"), ("massage", "massages", "booking"),
]

FAMILIES = {"device": "devices", "record": "records", "booking": "bookings"}
# (what people say, the word in a tool name, reads something)
ACTIONS = {
    "device": [("start", "start", False), ("stop", "stop", False), ("restart", "restart", False),
               ("turn on", "turn_on", False), ("switch off", "switch_off", False),
               ("pause", "pause", False), ("reset", "reset", False),
               ("calibrate", "calibrate", False), ("schedule", "schedule", False),
               ("set", "set", False), ("check", "get_status", True)],
    "record": [("create", "create", False), ("open", "open", False), ("close", "close", False),
               ("archive", "archive", False), ("assign", "assign", False),
               ("delete", "delete", False), ("update", "update", False),
               ("approve", "approve", False), ("list", "list", True), ("find", "find", True)],
    "booking": [("book", "book", False), ("reserve", "reserve", False),
                ("cancel", "cancel", False), ("reschedule", "reschedule", False),
                ("check availability of", "check_availability", True)],
}

PLACES = ["north", "south", "main", "upstairs", "basement", "lab", "backyard", "west wing",
          "east wing", "front", "rear", "workshop", "loft", "annex", "cellar", "top floor"]
MODES = ["eco", "turbo", "quiet", "normal", "auto", "night", "boost", "manual", "gentle",
         "max", "silent", "sport"]
TITLES = ["Apollo", "Q3 launch", "spring cleanup", "website redesign", "onboarding",
          "Orion", "budget review", "Falcon", "kitchen remodel", "data migration",
          "summer fair", "Atlas", "hiring plan", "Nimbus", "office move", "Juniper"]
NOTES = ["the left panel is loose", "customer called twice", "needs a second check",
         "urgent before Friday", "waiting on the supplier", "see the attached photo",
         "parts are in the van", "call before noon", "double check the totals",
         "the label is wrong", "handle with care", "ask Dana for access"]
TAGS = ["billing", "hardware", "urgent", "q3", "internal", "customer", "backlog", "safety",
        "design", "legal", "travel", "ops"]
PRIORITIES = ["low", "medium", "high", "urgent"]
PREFIXES = ["TCK", "INV", "PO", "WO", "BUG", "EXP", "SHP", "CASE", "JOB", "REQ", "ORD", "DEP"]


def _ids(prefix):
    def gen(r, s):
        v = f"{prefix}-{r.randrange(100, 9999)}" if s == "train" else \
            f"{prefix}{r.randrange(10, 99)}-{r.choice('ABCDEFGH')}"
        return v, v
    return gen


def _with_unit(unit, lo, hi, step=1):
    def gen(r, s):
        v = r.randrange(lo, hi + 1, step)
        return f"{v} {unit if v != 1 else unit[:-1]}", v
    return gen


def _tags(r, s):
    items = r.sample(split_pool(TAGS, s), r.randint(1, 3))
    return (items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]), items


# ---- parameters: (P, the fragment that says it: "{}" is where its value goes) ----------------

def _param(kind, thing, r, opt):
    """One parameter of a kind for a thing: (P, fragments). Optional parameters carry their
    fragments in P.opt (data.py places them); required ones are placed by the phrasing."""
    if kind == "place":
        name = r.choice(("location", "name", "device", "where", "unit_name"))
        frags = ["the {} " + thing] if not opt else [" in the {}", " (the {} one)"]
        return P(name, "string", f"Which {thing}, by its location", PLACES,
                 opt=frags if opt else None), frags
    if kind == "mode":
        modes = r.sample(MODES, r.randint(3, 5))
        return P("mode", "string", "Operating mode", modes, enum=modes,
                 opt=[" in {} mode", " on {}"] if opt else None), [" in {} mode", " on {} mode"]
    if kind == "level":
        name = r.choice(("level", "power", "intensity", "percent"))
        return P(name, "integer", "Level in percent", ints(10, 90, 5, "{}%"), lo=0, hi=100,
                 unit="percent", key=True, opt=[" at {}"] if opt else None), [" to {}", " at {}"]
    if kind == "minutes":
        name = r.choice(("minutes", "duration_minutes", "run_minutes", "duration"))
        return P(name, "integer", "How long, in minutes", _with_unit("minutes", 2, 90), lo=1,
                 hi=240, unit="minutes", key=True, opt=[" for {}"] if opt else None), [" for {}"]
    if kind == "seconds":
        name = r.choice(("seconds", "duration_s", "run_seconds"))
        return P(name, "integer", "How long, in seconds", _with_unit("seconds", 10, 300, 5),
                 lo=1, hi=3600, unit="seconds", key=True,
                 opt=[" for {}"] if opt else None), [" for {}"]
    if kind == "temperature":
        name = r.choice(("temperature", "target_temp", "degrees"))
        return P(name, "number", "Target temperature in Celsius",
                 _with_unit("degrees", 16, 90), lo=0, hi=250, key=True,
                 opt=[" at {}"] if opt else None), [" to {}", " at {}"]
    if kind == "at_time":
        name = r.choice(("time", "start_time", "at"))
        return P(name, "string", "Time, 24h HH:MM", times, unit="time", key=True,
                 opt=[" at {}"] if opt else None), [" at {}"]
    if kind == "date":
        name = r.choice(("date", "day", "on_date"))
        return P(name, "string", "Date as YYYY-MM-DD", dates, unit="date", key=True,
                 opt=[" on {}"] if opt else None), [" on {}", " for {}"]
    if kind == "id":
        name = r.choice(("id", thing.replace(" ", "_") + "_id", "reference", "number"))
        prefix = r.choice(PREFIXES)
        return P(name, "string", f"{thing.capitalize()} ID, like {prefix}-1234", _ids(prefix),
                 key=True), [" {}"]
    if kind == "title":
        name = r.choice(("title", "name", "subject"))
        return P(name, "string", "Title", TITLES, opt=[" called {}", " named {}"] if opt
                 else None), [" called {}", " named {}"]
    if kind == "person":
        name = r.choice(("assignee", "owner", "person", "contact"))
        return P(name, "string", "Who (a name)", NAMES,
                 opt=[" for {}", ", assigned to {}"] if opt else None), [" for {}", " to {}"]
    if kind == "priority":
        return P("priority", "string", "Priority", PRIORITIES, enum=PRIORITIES,
                 opt=[" with {} priority", ", {} priority"] if opt else None), \
            [" with {} priority"]
    if kind == "note":
        name = r.choice(("note", "comment", "details"))
        return P(name, "string", "Free text", NOTES, opt=[" with the note {}", ", note: {}"]), []
    if kind == "tags":
        return P("tags", "array", "Labels", _tags, items={"type": "string"},
                 opt=[" tagged {}"] if opt else None), [" tagged {}"]
    if kind == "count":
        name = r.choice(("count", "quantity", "copies", "limit"))
        return P(name, "integer", "How many", ints(2, 20), lo=1, hi=50,
                 opt=[", {} of them", " (x{})"] if opt else None), [" x{}"]
    if kind == "people":
        name = r.choice(("people", "party_size", "guests"))
        return P(name, "integer", "Number of people", ints(2, 12), lo=1, hi=20,
                 opt=[" for {} people"] if opt else None), [" for {} people"]
    if kind == "city":
        name = r.choice(("city", "location", "branch"))
        return P(name, "string", "City", CITIES, opt=[" in {}"] if opt else None), [" in {}"]
    if kind == "notify":
        name = r.choice(("notify", "send_alert", "notify_me"))
        return P(name, "boolean", "Send a notification when done",
                 opt={True: [" and notify me", " and let me know when it's done"],
                      False: [" without a notification", " and don't notify me"]}), []
    if kind == "force":
        name = r.choice(("force", "skip_checks"))
        return P(name, "boolean", "Skip the safety checks",
                 opt={True: [", forced", " and skip the checks"],
                      False: [" with the usual checks"]}), []
    raise ValueError(kind)


# which parameters an action on a family takes: (required kinds, optional kinds)
_SHAPES = {
    ("device", False): ([["place"], ["place", "minutes"], ["place", "level"], ["place", "mode"],
                         ["minutes"], ["place", "seconds"], ["place", "temperature"],
                         ["place", "at_time"]],
                        ["mode", "minutes", "notify", "force", "level"]),
    ("device", True): ([["place"]], []),
    ("record", False): ([["id"], ["title"], ["id", "person"], ["title", "priority"],
                         ["id", "date"], ["title", "date"]],
                        ["priority", "person", "note", "tags", "notify", "date"]),
    ("record", True): ([[], ["title"], ["person"]], ["priority", "count", "tags"]),
    ("booking", False): ([["date", "at_time"], ["date"], ["date", "people"],
                          ["city", "date"], ["at_time"]],
                         ["people", "city", "note", "notify"]),
    ("booking", True): ([["date"], ["city", "date"]], ["people", "at_time"]),
}


def template(r, split: str) -> T:
    """One made-up tool: its schema, phrasings, refusal gist and follow-up answer."""
    thing, plural, family = r.choice(split_pool(THINGS, split))
    said, word, reads = r.choice(ACTIONS[family])
    req_kinds, opt_kinds = _SHAPES[(family, reads)]
    req = list(r.choice(req_kinds))
    if said == "set" and not {"level", "mode", "temperature"} & set(req):
        req.append(r.choice(("level", "mode", "temperature")))
    opts = [k for k in r.sample(opt_kinds, min(len(opt_kinds), r.randint(0, 2))) if k not in req]
    opts.sort(key=lambda k: k == "note")     # free text last: nothing after it to misread
    params, frags, names = [], {}, set()
    for kind in req + opts:
        p, f = _param(kind, thing, r, kind in opts)
        if p.name in names:
            continue
        names.add(p.name)
        params.append(p)
        frags[p.name] = f
    thing_ = thing.replace(" ", "_")
    name = r.choice((f"{word}_{thing_}", f"{thing_}_{word}", f"{word}_{thing_}"))
    verb = f"{said} a" if said in ("create", "book", "reserve") else f"{said} the"
    obj = plural if said in ("list", "find") else thing

    def phrasing():
        head = f"{said} {plural}" if said in ("list", "find") else f"{verb} {obj}"
        tail = ""
        required = [p for p in params if not p.opt]
        r.shuffle(required)
        for p in required:
            f = r.choice(frags[p.name]).format("{%s}" % p.name)
            if f.startswith("the "):            # "the {location} pump": replaces the object
                head = f"{said} {f}"
            elif f.startswith(" {"):           # an id right after the thing: "ticket TCK-1"
                head += f
            else:
                tail += f
        return head + tail

    say = list(dict.fromkeys(phrasing() for _ in range(4)))
    desc = f"{said.capitalize()} {('a ' + thing) if not reads else plural}."
    if reads:
        res = lambda r_, a: {"status": r_.choice(("running", "idle", "offline", "ok",  # noqa: E731
                                                   "3 found", "none found", "available"))}
        done = "It reports: {status}."
    else:
        res, done = None, r.choice(("Done.", "All set.", f"The {thing} is taken care of."))
    place = next((p for p in params if not p.opt and p.pool is PLACES), None)
    pair = [f"{said} the {{{place.name}}} and {{{place.name}2}} {plural}"] \
        if place is not None and len(params) == 1 else []
    return T(name, FAMILIES[family], desc, params, say, gist=f"{said} {plural}", res=res,
             done=done, pair=pair)
