"""The drug products of the feed's medication events, K/Mg repletion and the rest."""

from __future__ import annotations

from typing import Final

from streams.synthetic_feed.lines import json_text


class Drug:
    """A drug product and its pre-serialised ``code, name, route, dose, dose_unit`` fragments."""

    __slots__ = ("dose", "dose_unit", "frag_local", "frag_null", "frag_rx", "name", "route")

    def __init__(
        self, name: str, rxnorm: str | None, local: str, route: str, dose: float, dose_unit: str
    ) -> None:
        self.name, self.route, self.dose, self.dose_unit = name, route, dose, dose_unit
        rest = (
            f'"name":{json_text(name)},"route":{json_text(route)},"dose":{json_text(dose)},'
            f'"dose_unit":{json_text(dose_unit)}'
        )
        self.frag_rx = f'"code":{json_text(rxnorm)},{rest}'
        self.frag_local = f'"code":{json_text(local)},{rest}'
        self.frag_null = f'"code":null,{rest}'


_NO_DRUG_FRAG: Final = '"code":null,"name":null,"route":null,"dose":null,"dose_unit":null'

_K_PO: Final = (
    Drug("Potassium chloride ER 20 mEq tablet", "8591", "KCL20ER", "PO", 20, "mEq"),
    Drug("Potassium chloride ER 20 mEq tablet", "8591", "KCL20ER", "PO", 40, "mEq"),
    Drug("Klor-Con M20 20 mEq tablet", "8591", "KLORCONM20", "PO", 20, "mEq"),
    Drug("Potassium chloride 40 mEq oral powder packet", "8591", "KCL40PWD", "PO", 40, "mEq"),
    Drug("K-Dur 20 mEq tablet", "8591", "KDUR20", "PO", 20, "mEq"),
    Drug("Potassium Chloride 10% oral solution 20 mEq/15 mL", "8591", "KCLLIQ", "PO", 20, "mEq"),
)
_K_IV: Final = (
    Drug("Potassium Chloride 20 mEq/100 mL IV", "8591", "KCL20IV", "IV", 20, "mEq"),
    Drug("KCl 10 mEq/50 mL IVPB", "8591", "KCL10PB", "IV", 10, "mEq"),
    Drug("KCl 10 mEq/50 mL IVPB", "8591", "KCL10PB", "IV", 10, "mEq"),
    Drug(
        "Potassium chloride 10 mEq in 100 mL sterile water IV", "8591", "KCL10SW", "IV", 10, "mEq"
    ),
    Drug("Potassium Chloride 40 mEq/100 mL IV (central line)", "8591", "KCL40CL", "IV", 40, "mEq"),
)
_K_PHOS: Final = Drug(
    "Potassium phosphate 15 mmol in 250 mL NS IV", None, "KPHOS15", "IV", 15, "mmol"
)
_K_PREMIX: Final = Drug(
    "Potassium chloride 20 mEq / Magnesium sulfate 1 g in 250 mL",
    None,
    "KMGPREMIX",
    "IV",
    250,
    "mL",
)
_MG_IV: Final = (
    Drug("Magnesium sulfate 2 g/50 mL IV", "6585", "MGSO42G", "IV", 2, "g"),
    Drug("Magnesium Sulfate 1 g/100 mL IVPB", "6585", "MGSO41G", "IV", 1, "g"),
    Drug("MgSO4 4 g/100 mL IV", "6585", "MGSO44G", "IV", 4, "g"),
    Drug("Magnesium sulfate 2 g/50 mL IV", "6585", "MGSO42G", "IV", 2, "g"),
)
_MG_PO: Final = (
    Drug("Magnesium oxide 400 mg tablet", "29155", "MGOX400", "PO", 400, "mg"),
    Drug("Mag-Ox 400 mg tablet", "29155", "MAGOX400", "PO", 400, "mg"),
    Drug("Slow-Mag 64 mg tablet", None, "SLOWMAG", "PO", 128, "mg"),
)
LOOP_DIURETICS: Final = (
    Drug("Furosemide 40 mg IV", "4603", "FUROS40IV", "IV", 40, "mg"),
    Drug("Furosemide 20 mg tablet", "4603", "FUROS20", "PO", 20, "mg"),
    Drug("Lasix 40 mg tablet", "4603", "LASIX40", "PO", 40, "mg"),
    Drug("Bumetanide 1 mg IV", "1808", "BUMEX1", "IV", 1, "mg"),
    Drug("Torsemide 20 mg tablet", "38413", "TORSEM20", "PO", 20, "mg"),
)
THIAZIDE: Final = (
    Drug("Hydrochlorothiazide 25 mg tablet", "5487", "HCTZ25", "PO", 25, "mg"),
    Drug("Metolazone 5 mg tablet", "6916", "METOL5", "PO", 5, "mg"),
    Drug("Chlorthalidone 25 mg tablet", "2409", "CHLORTH25", "PO", 25, "mg"),
    Drug("Triamterene-hydrochlorothiazide 37.5-25 mg tablet", None, "TRIAMHCTZ", "PO", 1, "tab"),
)
# Drugs the rules must ignore (RxNorm ingredient codes outside every class set, or none).
IGNORED_DRUGS: Final = (
    Drug("Acetaminophen 650 mg tablet", "161", "APAP650", "PO", 650, "mg"),
    Drug("Spironolactone 25 mg tablet", "9997", "SPIRO25", "PO", 25, "mg"),
    Drug("Magnesium hydroxide (milk of magnesia) 30 mL", "6582", "MOM30", "PO", 30, "mL"),
    Drug("Losartan potassium 50 mg tablet", "52175", "LOSAR50", "PO", 50, "mg"),
    Drug("Metoprolol tartrate 25 mg tablet", "6918", "METOP25", "PO", 25, "mg"),
    Drug("Pantoprazole 40 mg tablet", "40790", "PANTO40", "PO", 40, "mg"),
    Drug("Heparin 5000 units SC", "5224", "HEP5000", "SC", 5000, "units"),
    Drug("Atorvastatin 40 mg tablet", "83367", "ATORVA40", "PO", 40, "mg"),
    Drug("Docusate sodium 100 mg capsule", "82003", "DOCU100", "PO", 100, "mg"),
    Drug("Ondansetron 4 mg IV", "26225", "ONDAN4", "IV", 4, "mg"),
)
PRN: Final = frozenset({"Acetaminophen", "Magnesium", "Ondansetron"})
MIVF: Final = Drug("Potassium Chl 20 mEq / 1000 mL D5 1/2 NS", None, "MIVFK20", "IV", 1000, "mL")
