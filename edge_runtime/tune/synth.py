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


# a required `type` (data.Recipe.typed): (values, description, fragments) per family
_TYPES = {
    "device": (["quick", "full", "deep", "standard", "gentle", "eco"], "Cycle type",
               [" with the {} cycle", ", {} type", " (type {})"]),
    "record": (["bug", "feature", "question", "refund", "incident", "hardware", "billing"],
               "Type of {}", [" of type {}", ", type {}", " (a {} one)"]),
    "booking": (["standard", "premium", "group", "private", "express", "family"],
                "Booking type", [" ({} type)", ", {} option", " of type {}"]),
}


def _typed(thing, family, r):
    values, desc, frags = _TYPES[family]
    values = r.sample(values, r.randint(3, len(values)))
    name = r.choice(("type", "type", "kind", "category"))
    return P(name, "string", desc.format(thing), values,
             enum=values if r.random() < 0.5 else None), frags


def template(r, split: str, typed: bool = False) -> T:
    """One made-up tool: its schema, phrasings, refusal gist and follow-up answer. typed: it
    takes a `type` a third of the time."""
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
    if typed and r.random() < 0.33:
        p, f = _typed(thing, family, r)
        if p.name not in names:
            names.add(p.name)
            params.insert(0, p)
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


# ---- formulas: tools that compute from numbers, lists and named columns ----------------------
# Version 8 of the generator (data.RECIPES). Taught without them, the model wrote an empty list
# for every array of numbers, dropped digits from "$2,000,000" and put one measurement in
# another's place (BFCL simple_python, a development category: docs/TOOL_CALLING.md).

def _measure(lo, hi, unit, digits=0):
    def gen(r, s):
        v = r.randint(lo, hi) if digits == 0 else round(r.uniform(lo, hi), digits)
        return (f"{v} {unit}" if unit else str(v)), v
    return gen


def _money(r, s):
    v = r.choice((r.randrange(1, 100) * 1000, r.randrange(1, 50) * 100,
                  r.randrange(1, 20) * 1_000_000, r.randrange(100, 99999)))
    return r.choice((f"${v:,}", f"{v:,} dollars", f"${v}", f"{v:,} USD")), v


def _percent(as_fraction):
    """A rate said in percent: the value is 0.05 for "5%" when the schema asks for a decimal."""
    def gen(r, s):
        pct = r.choice((1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25))
        return f"{pct}%", round(pct / 100, 4) if as_fraction else pct
    return gen


def _numbers(lo, hi, digits=0):
    def gen(r, s):
        v = [r.randint(lo, hi) if digits == 0 else round(r.uniform(lo, hi), digits)
             for _ in range(r.randint(2, 6))]
        t = [str(x) for x in v]
        form = r.random()
        text = ("[" + ", ".join(t) + "]" if form < 0.35 else ", ".join(t) if form < 0.6
                else ", ".join(t[:-1]) + " and " + t[-1])
        return text, v
    return gen


COLUMNS = ["Age", "Income", "Education", "Region", "Score", "Price", "Weight", "Height",
           "Salary", "Tenure", "Rating", "Clicks", "Visits", "Revenue", "Churn", "Distance"]


def _columns(r, s):
    items = r.sample(split_pool(COLUMNS, s), r.randint(2, 4))
    t = [r.choice(("'{}'", "{}", '"{}"')).format(x) for x in items]
    return ", ".join(t[:-1]) + " and " + t[-1], items


def _column(r, s):
    v = r.choice(split_pool(COLUMNS, s))
    return r.choice((f"'{v}'", v)), v


class _Q:
    """A quantity a formula takes: names it may have, its description, values, the fragments
    that say it ("{}" is the value) and a companion that comes with it (group A, group B)."""

    def __init__(self, names, desc, gen, frags, type="number", items=None, with_=None):
        self.names, self.desc, self.gen, self.frags = names, desc, gen, frags
        self.type = "array" if items else type
        self.items, self.with_ = items, with_


_NUM = {"type": "number"}
QUANTITIES = {
    "physics": [
        _Q(("mass", "mass_kg"), "Mass in kilograms", _measure(1, 500, "kg", 1),
           ["a mass of {}", "weighing {}"]),
        _Q(("volume", "volume_m3"), "Volume in cubic meters", _measure(1, 80, "cubic meters", 1),
           ["a volume of {}", "taking up {}"]),
        _Q(("velocity", "speed"), "Speed in m/s", _measure(1, 90, "m/s"),
           ["moving at {}", "a speed of {}"]),
        _Q(("height", "drop_height"), "Height in meters", _measure(2, 400, "m"),
           ["from a height of {}", "dropped from {}"]),
        _Q(("time", "duration"), "Time in seconds", _measure(2, 120, "seconds"),
           ["over {}", "during {}"]),
        _Q(("force", "force_n"), "Force in newtons", _measure(5, 900, "N"),
           ["a force of {}", "pushed with {}"]),
        _Q(("area", "surface_area"), "Area in square meters", _measure(1, 60, "m²", 2),
           ["over an area of {}", "an area of {}"]),
        _Q(("distance", "displacement"), "Distance in meters", _measure(5, 5000, "m"),
           ["over a distance of {}", "across {}"]),
    ],
    "finance": [
        _Q(("principal", "initial_investment", "loan_amount"), "Starting amount in dollars",
           _money, ["a starting amount of {}", "an initial investment of {}", "a principal of {}"]),
        _Q(("rate", "annual_rate", "interest_rate"), "Annual rate as a decimal (0.05 for 5%)",
           _percent(True), ["an annual rate of {}", "at {} a year"]),
        _Q(("rate_percent", "growth_percent"), "Annual rate in percent (5 for 5%)",
           _percent(False), ["a yearly rate of {}", "growing {} a year"]),
        _Q(("years", "term_years", "period"), "Number of years", _measure(1, 40, "years"),
           ["over {}", "for {}"], type="integer"),
        _Q(("revenue", "total_revenue"), "Revenue in dollars", _money,
           ["revenue of {}", "a revenue of {}"]),
        _Q(("cost", "total_cost", "expenses"), "Cost in dollars", _money,
           ["costs of {}", "a total cost of {}"]),
        _Q(("cash_flows", "payments"), "Yearly amounts in dollars", _numbers(100, 9000),
           ["cash flows of {}", "yearly amounts {}"], items=_NUM),
        _Q(("shares", "units"), "How many shares", _measure(10, 50000, ""),
           ["{} shares", "holding {} shares"], type="integer"),
    ],
    "stats": [
        _Q(("values", "data", "numbers", "samples"), "The numbers", _numbers(1, 99),
           ["the values {}", "the numbers {}", "data {}"], items=_NUM),
        _Q(("group_a", "sample1", "first"), "First sample", _numbers(1, 60),
           ["group A {}", "a first sample of {}"], items=_NUM, with_=1),
        _Q(("group_b", "sample2", "second"), "Second sample", _numbers(1, 60),
           ["group B {}", "a second sample of {}"], items=_NUM),
        _Q(("features", "columns", "predictors"), "Column names", _columns,
           ["the columns {}", "predictors {}", "features {}"], items={"type": "string"}),
        _Q(("target", "label_column"), "The column to predict", _column,
           ["target {}", "predicting {}"], type="string"),
        _Q(("percentile", "q"), "Percentile, 1-99", _measure(1, 99, ""),
           ["the {}th percentile", "percentile {}"], type="integer"),
        _Q(("window", "window_size"), "Window length in points", _measure(2, 30, ""),
           ["a window of {}", "window size {}"], type="integer"),
        _Q(("measurements", "readings"), "Readings", _numbers(0, 40, 1),
           ["the readings {}", "measurements {}"], items=_NUM),
    ],
    "health": [
        _Q(("weight_kg", "weight"), "Body weight in kg", _measure(40, 140, "kg"),
           ["weighing {}", "a weight of {}"]),
        _Q(("height_m",), "Height in meters", _measure(1, 2, "m", 2),
           ["{} tall", "a height of {}"]),
        _Q(("height_cm",), "Height in centimeters", _measure(140, 205, "cm"),
           ["{} tall", "a height of {}"]),
        _Q(("age", "age_years"), "Age in years", _measure(18, 90, "years old"),
           ["{}", "aged {}"], type="integer"),
        _Q(("resting_hr", "resting_heart_rate"), "Resting heart rate in bpm",
           _measure(45, 95, "bpm"), ["a resting heart rate of {}", "resting pulse {}"],
           type="integer"),
        _Q(("steps", "daily_steps"), "Steps per day", _measure(1000, 25000, "steps"),
           ["walking {} a day", "{} daily"], type="integer"),
    ],
    "geometry": [
        _Q(("radius", "r"), "Radius in cm", _measure(1, 80, "cm", 1),
           ["a radius of {}", "radius {}"]),
        _Q(("length", "side_a"), "Length in cm", _measure(1, 300, "cm"),
           ["a length of {}", "{} long"]),
        _Q(("width", "side_b"), "Width in cm", _measure(1, 300, "cm"),
           ["a width of {}", "{} wide"]),
        _Q(("angle", "angle_deg"), "Angle in degrees", _measure(5, 175, "degrees"),
           ["an angle of {}", "at {}"]),
        _Q(("sides", "side_lengths"), "Side lengths in cm", _numbers(1, 40),
           ["sides of {}", "side lengths {}"], items=_NUM),
    ],
}
RESULTS = {
    "physics": ["density", "kinetic energy", "momentum", "pressure", "final velocity",
                "fall time", "power output", "work done", "buoyant force", "stopping distance",
                "impact speed", "drag force"],
    "finance": ["compound interest", "future value", "monthly payment", "return on investment",
                "break even point", "net present value", "profit margin", "payback period",
                "annual yield", "dividend per share", "growth rate", "tax owed"],
    "stats": ["mean", "standard deviation", "t statistic", "correlation", "regression fit",
              "moving average", "z scores", "outliers", "histogram", "median", "variance",
              "confidence interval"],
    "health": ["body mass index", "daily calories", "target heart rate", "body fat estimate",
               "water intake", "fitness score", "ideal weight", "recovery time"],
    "geometry": ["area", "perimeter", "volume", "surface area", "diagonal", "circumference",
                 "arc length", "inscribed circle"],
}
_SHORT = {"body mass index": "bmi", "return on investment": "roi", "net present value": "npv",
          "standard deviation": "std_dev", "t statistic": "t_stat"}


def _optional(r) -> P:
    """An optional parameter with a default, set only when a request mentions it."""
    kind = r.randrange(3)
    if kind == 0:
        return P(r.choice(("decimals", "round_to", "precision")), "integer",
                 "Decimal places in the result, default 2", _measure(0, 6, ""), lo=0, hi=10,
                 default=2, opt=[", rounded to {} decimals", " to {} decimal places"])
    if kind == 1:
        return P("unit_system", "string", "metric or imperial, default metric",
                 ["metric", "imperial"], enum=["metric", "imperial"], default="metric",
                 opt=[" in {} units", ", {} units"])
    return P(r.choice(("detailed", "include_steps", "verbose")), "boolean",
             "Include the working, default false", default=False,
             opt={True: [" and show the working", " with the steps"],
                  False: [" without the working"]})


def formula(r, split: str) -> T:
    """One made-up calculation tool: 1-3 required quantities of a domain, 0-1 optional."""
    domain = r.choice(sorted(QUANTITIES))
    noun = r.choice(split_pool(RESULTS[domain], split))
    qs = QUANTITIES[domain]
    picked = []
    for q in r.sample(qs, r.randint(1, 3)):
        if q in picked:
            continue
        picked.append(q)
        if q.with_ is not None:
            picked.append(qs[qs.index(q) + q.with_])
    params, frags = [], {}
    for q in picked:
        name = r.choice(q.names)
        if name in frags:
            continue
        params.append(P(name, q.type, q.desc, q.gen, key=True, items=q.items))
        frags[name] = q.frags
    if r.random() < 0.5:
        params.append(_optional(r))
    word = _SHORT.get(noun, noun.replace(" ", "_"))
    name = r.choice((f"compute_{word}", f"{word}_calculator", f"estimate_{word}",
                     f"{word}_from_inputs", f"calc_{word}"))

    def phrasing(ask):
        fs = [r.choice(frags[p.name]).format("{%s}" % p.name) for p in params if not p.opt]
        r.shuffle(fs)
        said = fs[0] if len(fs) == 1 else ", ".join(fs[:-1]) + " and " + fs[-1]
        if ask:
            return r.choice(("what is the {} for {}?", "what's the {} with {}?",
                             "how big is the {} given {}?")).format(noun, said)
        return r.choice(("calculate the {} for {}", "compute the {} with {}",
                         "work out the {} given {}", "find the {} using {}",
                         "get the {} from {}")).format(noun, said)

    say = list(dict.fromkeys(phrasing(False) for _ in range(4)))
    ask = list(dict.fromkeys(phrasing(True) for _ in range(2)))
    first = params[0]
    pair = []
    if len([p for p in params if not p.opt]) == 1 and first.type != "array":
        f = frags[first.name]
        pair = [f"compute the {noun} for {f[0].format('{%s}' % first.name)} and for "
                f"{f[-1].format('{%s2}' % first.name)}"]
    return T(name, domain, f"{noun.capitalize()} from the given inputs.", params, say, ask,
             gist=f"compute the {noun}",
             res=lambda r_, a: {"result": round(r_.uniform(0.5, 5000), 2)},
             done=f"The {noun} is {{result}}.", pair=pair)
