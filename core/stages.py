"""The one stage vocabulary: raw CRM stages → `stage_normalized`, stage probabilities and forecast categories.

Pure functions and tables, no database: the post-sync pipeline and the file importer load a workspace's
`stage_mappings` and hand them to `normalize_stage`; whatever this module guesses is only a guess, returned with a
confidence and a reason the caller reports (and stores as a mapping the user can change).

Choices where the original was inconsistent:
- One vocabulary for every source (the original's import path used discovery/proposal): discovery, intro and
  prospecting read awareness; proposal reads decision; contract and verbal commitments read negotiation.
- Probability is stored 0-100 everywhere (`to_percent`); the original stored 0-1 for HubSpot and imports.
- A "scheduled" stage is qualification (a meeting got booked), except "discovery/intro ... scheduled", which is
  still awareness: awareness keywords are checked before the bare word "scheduled".
- "negotiat…", "dead" and "disqualified" are keywords here; the original fell through to awareness for them.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from core.errors import InputError

STAGES = ("awareness", "qualification", "evaluation", "decision", "negotiation", "closed_won", "closed_lost")
OPEN_STAGES = STAGES[:5]
CLOSED_STAGES = ("closed_won", "closed_lost")
STAGE_ORDER: dict[str, int] = {stage: index for index, stage in enumerate(STAGES)}

_DEFAULT_PROBABILITY = {
    "awareness": 10, "qualification": 20, "evaluation": 40, "decision": 60, "negotiation": 80,
    "closed_won": 100, "closed_lost": 0,
}

# Raw stage (casefolded) → normalized, per source.
DEFAULT_MAPS: dict[str, dict[str, str]] = {
    "salesforce": {
        "prospecting": "awareness",
        "qualification": "qualification",
        "needs analysis": "qualification",
        "value proposition": "evaluation",
        "id. decision makers": "evaluation",
        "perception analysis": "evaluation",
        "proposal/price quote": "decision",
        "negotiation/review": "negotiation",
        "closed won": "closed_won",
        "closed lost": "closed_lost",
    },
    "hubspot": {
        "appointmentscheduled": "qualification",
        "qualifiedtobuy": "qualification",
        "presentationscheduled": "evaluation",
        "decisionmakerboughtin": "evaluation",
        "contractsent": "negotiation",
        "closedwon": "closed_won",
        "closedlost": "closed_lost",
        "appointment scheduled": "qualification",
        "qualified to buy": "qualification",
        "presentation scheduled": "evaluation",
        "decision maker bought-in": "evaluation",
        "contract sent": "negotiation",
        "closed won": "closed_won",
        "closed lost": "closed_lost",
        # Not HubSpot defaults, but the labels our demo data (HubSpot-shaped) and many portals add.
        "discovery": "awareness",
        "proposalsent": "decision",
        "proposal sent": "decision",
    },
    "pipedrive": {
        "lead in": "awareness",
        "qualified": "qualification",
        "contact made": "qualification",
        # The third default stage is "Needs Defined" in older accounts and "Demo Scheduled" in newer ones.
        "needs defined": "evaluation",
        "demo scheduled": "evaluation",
        "proposal made": "decision",
        "negotiations started": "negotiation",
        "won": "closed_won",
        "lost": "closed_lost",
    },
}

_KEYWORDS: tuple[tuple[str, str], ...] = (
    (r"\bwon\b", "closed_won"),
    (r"\b(lost|dead|disqualified)\b", "closed_lost"),
    (r"\b(contract|verbal|commit|signed|signature|negotiat)", "negotiation"),
    (r"\b(proposal|decision|reviewed|quote)", "decision"),
    (r"\b(demo|pilot|poc|presentation|evaluat|trial)", "evaluation"),
    (r"\b(qualified|qualification|qualify)", "qualification"),
    (r"\b(discovery|intro|prospect|lead)", "awareness"),
    (r"\b(scheduled|meeting booked|redirect)", "qualification"),
)

# Confidence of each rule, strongest first.
_CONF_FLAGS, _CONF_WORKSPACE, _CONF_SOURCE, _CONF_OTHER_SOURCE = 1.0, 1.0, 0.95, 0.85
_CONF_KEYWORD, _CONF_PROBABILITY, _CONF_NOTHING = 0.7, 0.5, 0.2


def stage_key(raw: str) -> str:
    """The loose form stage mappings are also looked up by: lowercase letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", raw.casefold())


def _alnum_index(table: dict[str, str]) -> dict[str, str]:
    return {stage_key(raw): stage for raw, stage in table.items()}


_DEFAULT_ALNUM = {source: _alnum_index(table) for source, table in DEFAULT_MAPS.items()}


def default_probability(stage: str | None) -> int:
    """A stage's default win probability, 0-100 (0 for an unknown or missing stage)."""
    return _DEFAULT_PROBABILITY.get(stage or "", 0)


def to_percent(p: object) -> Decimal | None:
    """A probability as stored: 0-100 with two decimals; None for a missing value.

    The original stored 0-1 for HubSpot and imports but read 0-100 elsewhere, so 0.6 became 0.6 % (BUG). Here a
    bare number <= 1 is a fraction (0.6 → 60, 1 → 100) and anything else is already a percent; a trailing "%"
    always means a percent as written ("0.5%" → 0.5). Raises InputError for text that is not a number or a value
    outside 0-100 %.
    """
    if p is None or isinstance(p, bool):
        return None
    text = str(p).strip()
    if not text:
        return None
    explicit = text.endswith("%")
    try:
        value = Decimal(text.rstrip("%").strip().replace(",", "."))
    except InvalidOperation:
        raise InputError(f"{text!r} is not a probability (expected e.g. 60, 60% or 0.6)") from None
    if not value.is_finite():
        raise InputError(f"{text!r} is not a probability (expected e.g. 60, 60% or 0.6)")
    if not explicit and value <= 1:
        value *= 100
    if not 0 <= value <= 100:
        raise InputError(f"{text!r} is not a probability between 0 and 100 %")
    return value.quantize(Decimal("0.01"))


def forecast_category_for(stage: str | None, probability: object = None) -> str:
    """closed | commit | best_case | pipeline | not_forecasted.

    closed_won → closed, closed_lost → not_forecasted. For an open (or unknown) stage the probability decides,
    as the original's HubSpot path did: >= 90 commit, >= 60 best_case, > 0 pipeline, 0 not_forecasted; the
    original's comment promised "<= 10 → not_forecasted" but its code did not, and we follow the code. A missing
    probability falls back to the stage's default; 100 on an open stage is commit, not closed.
    """
    if stage == "closed_won":
        return "closed"
    if stage == "closed_lost":
        return "not_forecasted"
    percent = to_percent(probability)
    if percent is None:
        if stage not in STAGE_ORDER:
            return "not_forecasted"
        percent = Decimal(default_probability(stage))
    if stage is None and percent >= 100:
        return "closed"
    if percent >= 90:
        return "commit"
    if percent >= 60:
        return "best_case"
    if percent > 0:
        return "pipeline"
    return "not_forecasted"


def _probability_band(percent: Decimal) -> str:
    if percent >= 100:
        return "closed_won"
    for floor, stage in ((80, "negotiation"), (60, "decision"), (40, "evaluation"), (20, "qualification")):
        if percent >= floor:
            return stage
    return "awareness"


def guess_stage(
    raw: str | None,
    *,
    probability: object = None,
    is_closed: bool | None = None,
    is_won: bool | None = None,
) -> tuple[str, float, str]:
    """Best guess for a stage no mapping knows: (normalized, confidence 0-1, reason).

    Order: the source's closed/won flags; "closed won/lost" in the text; the default maps of every source (exact,
    then letters and digits only); keywords (see the module docstring); the probability; else awareness with low
    confidence. When `is_closed` is False no rule may answer a closed stage.
    """
    text = (raw or "").strip()
    folded, key = text.casefold(), stage_key(text)
    shown = repr(text) if text else "an empty stage"
    open_only = is_closed is False

    if is_won is True or (is_closed is True and is_won is False):
        stage = "closed_won" if is_won else "closed_lost"
        return stage, _CONF_FLAGS, f"the source marks the deal {'won' if is_won else 'lost'}"
    if "closedwon" in key and not open_only:
        return "closed_won", 0.99, f"{shown} says closed won"
    if "closedlost" in key and not open_only:
        return "closed_lost", 0.99, f"{shown} says closed lost"

    candidates: list[tuple[str, float, str]] = []
    if key:
        for source, table in DEFAULT_MAPS.items():
            stage = table.get(folded) or _DEFAULT_ALNUM[source].get(key)
            if stage:
                candidates.append((stage, _CONF_OTHER_SOURCE, f"{shown} is a default {source} stage"))
        for pattern, stage in _KEYWORDS:
            match = re.search(pattern, folded)
            if match:
                candidates.append((stage, _CONF_KEYWORD, f"{shown} contains {match.group(0)!r}"))
    percent = to_percent(probability) if probability is not None else None
    if percent is not None:
        candidates.append((_probability_band(percent), _CONF_PROBABILITY, f"probability {percent:g}%"))
    for stage, confidence, reason in candidates:
        if is_closed is True and stage not in CLOSED_STAGES:
            continue
        if open_only and stage in CLOSED_STAGES:
            continue
        return stage, confidence, reason
    if is_closed is True:  # closed, but nothing says it was won
        return "closed_lost", 0.6, f"the source marks {shown} closed and nothing says won"
    return "awareness", _CONF_NOTHING, f"nothing recognisable in {shown}; guessed awareness"


def normalize_stage(
    raw: str | None,
    source: str | None,
    workspace_map: dict[str, str] | None = None,
    *,
    probability: object = None,
    is_closed: bool | None = None,
    is_won: bool | None = None,
) -> tuple[str, float, str]:
    """Normalize one raw stage: the source's won/lost flags (see `closed_flags`) → the workspace's mapping (exact
    raw, then casefold, then letters and digits only) → the source's default map → `guess_stage`.

    A mapped stage that contradicts `is_closed` is skipped (a won Pipedrive deal stays in its last open stage).
    Workspace entries whose value is not a known stage are ignored (they cannot be stored through
    `validate_stage`, but an old row must not break an import)."""
    text = (raw or "").strip()
    if is_won is True or (is_closed is True and is_won is False):
        return guess_stage(text, is_closed=is_closed, is_won=is_won)

    def fits(stage: str) -> bool:
        return is_closed is None or (stage in CLOSED_STAGES) == is_closed

    if text and workspace_map:
        valid = {k: v for k, v in workspace_map.items() if v in STAGE_ORDER}
        stage = valid.get(text) or {k.casefold(): v for k, v in valid.items()}.get(text.casefold())
        stage = stage or _alnum_index(valid).get(stage_key(text))
        if stage and fits(stage):
            return stage, _CONF_WORKSPACE, f"workspace stage mapping for {text!r}"
    if text and source in DEFAULT_MAPS:
        stage = DEFAULT_MAPS[source].get(text.casefold()) or _DEFAULT_ALNUM[source].get(stage_key(text))
        if stage and fits(stage):
            return stage, _CONF_SOURCE, f"default {source} stage {text!r}"
    return guess_stage(text, probability=probability, is_closed=is_closed, is_won=is_won)


_STATUS_FLAGS = {
    "won": (True, True), "closed won": (True, True), "lost": (True, False), "closed lost": (True, False),
    "open": (False, None), "deleted": (None, None),
}
_TRUE, _FALSE = frozenset({"true", "yes", "y", "1", "x", "checked", "t"}), frozenset({"false", "no", "n", "0", "f", ""})


def _flag(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().casefold()
    return True if text in _TRUE else False if text in _FALSE else None


def closed_flags(status: object = None, is_closed: object = None, is_won: object = None) -> tuple[bool | None, bool | None]:
    """(is_closed, is_won) for `guess_stage` / `normalize_stage` from a deal's status (Pipedrive's open / won /
    lost) and/or Salesforce-style Closed / Won yes-no cells; None where nothing says."""
    closed, won = _STATUS_FLAGS.get(str(status).strip().casefold(), (None, None)) if status is not None else (None, None)
    closed = _flag(is_closed) if _flag(is_closed) is not None else closed
    won = _flag(is_won) if _flag(is_won) is not None else won
    if won is True:
        closed = True
    return closed, won


def validate_stage(value: str) -> str:
    """A user-supplied normalized stage (e.g. when editing a stage mapping); InputError listing valid ones."""
    stage = (value or "").strip().casefold().replace(" ", "_").replace("-", "_")
    if stage not in STAGE_ORDER:
        raise InputError(f"unknown stage {value!r}; valid stages: {', '.join(STAGES)}", field="stage_normalized")
    return stage
