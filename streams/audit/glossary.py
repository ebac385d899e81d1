"""The report's plain-language words: how to read it, what each rule parameter means."""

from __future__ import annotations

from typing import Any

PARAMETERS: dict[str, str] = {
    "k_low": "potassium below this (mmol/L) is low",
    "k_moderate": "potassium below this raises 'magnesium not checked' to high severity",
    "k_severe": "potassium below this makes a low-magnesium alert critical",
    "mg_low": "magnesium below this (mg/dL) is low",
    "mg_severe": "magnesium below this makes a low-magnesium alert critical",
    "hold_minutes": "wait after the potassium order before judging (time to co-order magnesium)",
    "mg_lookback_hours": "a magnesium result or dose this long before t0 still counts",
    "k_recent_hours": "a potassium result older than this is treated as unknown",
    "refractory_window_hours": "window in which repeated potassium episodes are counted",
    "refractory_min_episodes": "episodes in that window that make the refractory pattern",
    "diuretic_lookback_hours": "a loop or thiazide diuretic this long before raises severity",
    "alert_ttl_hours": "an alert closes this long after the patient's newest potassium episode",
    "episode_gap_hours": "a dose this long after the order's previous one starts a new episode",
    "history_hours": "how much history the service keeps per patient",
    "allowed_lateness_minutes": "how late a live message may arrive and still be in order",
    "idle_advance": "live service only: let time advance on a quiet feed",
    "k_plausible": "potassium values outside this range (mmol/L) are rejected as implausible",
    "mg_plausible": "magnesium values outside this range (mg/dL) are rejected as implausible",
    "k_codes": "LOINC codes read as serum potassium",
    "mg_codes": "LOINC codes read as serum magnesium",
    "k_sparing_keywords": "drug names never counted as potassium repletion",
    "med_codes": "RxNorm codes of each drug class",
    "med_keywords": "drug-name words of each drug class",
}


def _n(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def how_to_read(cfg: dict[str, Any], follow_up: int) -> str:
    """Return the 'how to read this' note, with the configured numbers."""
    hold, lookback = _n(cfg["hold_minutes"]), _n(cfg["mg_lookback_hours"])
    return f"""<div class="note"><b>How to read this.</b><ul>
<li>An <b>episode</b> is one potassium repletion order (an order without id: one event). Its start,
<b>t0</b>, is its first order or dose; a standing order given again more than
{_n(cfg["episode_gap_hours"])} h after its previous dose starts a new episode.</li>
<li>{hold} minutes after t0 the same rules as the live alerts look at magnesium collected from
{lookback} h before t0 on, and at magnesium given in that time. Each episode gets one
<b>magnesium status</b>: <i>not checked</i> (no result, none given), <i>low, not corrected</i>
(latest &lt; {cfg["mg_low"]} mg/dL and none given since it was drawn), <i>low, corrected</i>,
<i>given, not checked</i>, or <i>normal</i>.</li>
<li><b>Refractory pattern</b>: magnesium not checked or low and uncorrected, potassium still below
{cfg["k_low"]} mmol/L, and at least {cfg["refractory_min_episodes"]} potassium episodes within
{_n(cfg["refractory_window_hours"])} h.</li>
<li>Percentages are of the episodes in that row (month, location or all). Orders cancelled before
the {hold}-minute check were never judged: they are counted apart, not in the percentages.</li>
<li><b>Times</b> run from t0 to the first magnesium result that became available, and to the
first magnesium order or dose, within {follow_up} h of t0.</li>
<li><b>Alerts</b> are what the live service would have sent with this configuration. A patient has
at most one open alert of each kind, so there are fewer alerts than episodes with a problem.</li>
</ul></div>"""
