"""Two translation errors counted by rule (issue 26): a dropped number word and a repeated
verb. Both are heuristics over words, transparent on purpose; docs/translation.md gives the
numbers and the command (`python -m captioner.pipelines.translate_eval ... --errors`).

**Dropped number word.** The English source has a number word from two to twelve (or a
number in digits) and the translation has none of that number's target-language forms
(`NUMBER_FORMS`; a word that *starts with* a form counts, so German "zweijähriges" and Czech
"dvouletý" keep "two"; the digits themselves count too). "one" is left out: its German,
French and Czech forms are the indefinite article ("ein", "un", "jeden"), so they are almost
never missing. Hyphenated English words are split ("two-story" has "two").

**Repeated verb.** The translation has at least two verb forms and more than its reference
("Ein Hund rennt im Gras läuft." has two, the reference "Ein Hund läuft auf dem Gras." one).
A verb form is a word of `VERB_FORMS[lang]`: the lexical verb forms among the most frequent
words of that language's Multi30k training captions (the 700 most frequent lower-cased words
for German and Czech, 600 for French), picked by hand: finite forms, infinitives, and the
participles captions use as verbs (French "portant", "assis"; Czech "sedící"); never the
auxiliaries (ist / sind / hat / wird; est / sont / a / ont; je / jsou / má / mají), nor words
whose noun reading is common (German nouns are capitalised, so German forms count only when
written in lower case: "essen" is a verb, "Essen" a noun; French "porte" and "lit" are kept
as verbs, "marches" is not). A reference with two verbs, translated with two, does not
count: only more verbs than the reference does. `same_verb_twice`, the strictest case,
counts the sentences where one verb form itself comes twice ("rennen rennen").

Both shares come with the same count on the references themselves (source vs reference) as
a floor: human translators also render "two men" as "Männer" or "ein Paar", and a reference
dropping a number is not an error of the model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

NUMBERS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip

NUMBER_FORMS: dict[str, dict[int, tuple[str, ...]]] = {
    "de": {
        2: ("zwei",), 3: ("drei",), 4: ("vier",), 5: ("fünf",), 6: ("sechs",),
        7: ("sieben",), 8: ("acht",), 9: ("neun",), 10: ("zehn",), 11: ("elf",),
        12: ("zwölf",),
    },
    "fr": {
        2: ("deux",), 3: ("trois",), 4: ("quatre",), 5: ("cinq",), 6: ("six",),
        7: ("sept",), 8: ("huit",), 9: ("neuf",), 10: ("dix",), 11: ("onze",),
        12: ("douze",),
    },
    "cs": {  # the case forms, and the collectives (dvojice, trojice, čtveřice: a pair, ...)
        2: ("dva", "dvě", "dvou", "dvoj"), 3: ("tři", "tří", "třem", "troj"),
        4: ("čtyř", "čtveř"), 5: ("pět", "pěti"), 6: ("šest",), 7: ("sedm",),
        8: ("osm",), 9: ("devět", "devíti"), 10: ("deset", "deseti"),
        11: ("jedenáct",), 12: ("dvanáct",),
    },
}  # fmt: skip

# The lexical verb forms among the most frequent words of Multi30k train (see the docstring).
VERB_FORMS: dict[str, frozenset[str]] = {
    "de": frozenset(
        """
        steht sitzt hält spielt stehen sitzen spielen geht trägt fährt macht springt gehen
        läuft schaut essen rennt fahren rennen sehen blickt liegt versucht laufen arbeitet
        tragen machen lächelt schauen arbeiten zeigt sieht spricht liest unterhalten halten
        singt posiert klettert führt befindet wirft isst wartet posieren springen tanzen
        bereitet betrachtet warten schläft zieht lehnt reitet beobachtet tanzt lächeln
        schiebt befinden verkauft trinkt fangen schneidet hängt telefoniert spazieren malt
        nimmt schwimmt blicken schlägt fliegt kämpfen hebt überqueren zuschauen bereiten
        tritt genießt lacht benutzt unterhält zusieht zuschaut trinken lässt zusehen
        versuchen gibt scheint beobachten treten kniet fängt raucht betrachten führen liegen
        lachen reden rutscht greift hilft fotografiert werfen surft überquert legt versammeln
        nehmen kommt genießen stellt schreibt guckt lesen klettern sprechen streckt kaufen
        schwingt schlagen singen starrt hört umarmt jagt repariert putzt verkaufen
        balanciert winkt beugt
    """.split()
    ),
    "fr": frozenset(
        """
        fait tient regarde joue tenant jouant jouent regardant marche faisant saute
        regardent marchant porte portant court marchent font sautant prend courant faire
        parle passe courent souriant sourit lit pose travaille tente parlant jouer attraper
        travaillant tiennent travaillent semble danse utilise chante manger posent prenant
        trouve regarder parlent passent prendre peint pousse prépare utilisant dansent
        attendent frapper attendant descend attend passant lisant essayant posant dansant
        tire portent monte sautent met traverse promène mangeant dort sauter lancer sourient
        prennent lance écrit glisse donne aide buvant chantant apprête battent frappe
        traversent roulant préparant rassemblent mange parler assis assise assises allongé
    """.split()
    ),
    "cs": frozenset(
        """
        sedí stojí drží hraje jde hrají běží skáče dívá jede jdou mluví dívají prochází dělá
        pracuje leží snaží sedící nese čte stojící usmívá sleduje fotí připravuje pracují
        zpívá kouká ukazuje pózuje předvádí jedou chodí leze spí tančí baví směje čeká nosí
        sledují pózují používá pozoruje držící vypadá tlačí dává závodí hrající hází maluje
        opírá prohlíží plave chystá čekají smějí povídají užívá sjíždí prodává připravují
        pije přechází klečí kouří pozorují zvedá skáčou řídí jezdí letí visí usmívající
        hledí odpočívá procházejí jedí chytá kope pomáhá pokouší užívají koukají nosící
        poslouchá honí projíždí vaří píše čistí telefonuje vystupuje přihlíží táhne tancuje
        mává zápasí provádí pijí vede houpe tancují bojují běžící jedoucí přeskakuje
        vystupují krájí natahuje surfuje vyskakuje staví kráčí chytit
    """.split()
    ),
}
CASED = {"de"}  # German: a verb form counts only in lower case (nouns are capitalised)
LANGS = tuple(VERB_FORMS)
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The words of `text` as written (hyphens and apostrophes split them)."""
    return _WORD.findall(text)


def source_numbers(source: str) -> set[str]:
    """The number words (two .. twelve, as digits "2" .. "12") and digit strings of an English
    sentence."""
    found = set()
    for w in words(source.lower()):
        if w in NUMBERS:
            found.add(str(NUMBERS[w]))
        elif w.isdigit():
            found.add(w)
    return found


def dropped_numbers(source: str, translation: str, lang: str) -> list[str]:
    """The numbers of `source` (as digit strings) that `translation` has no form of."""
    forms = NUMBER_FORMS[_check(lang)]
    said = [w.lower() for w in words(translation)]
    missing = []
    for number in sorted(source_numbers(source), key=int):
        spelt = forms.get(int(number), ())
        if number in said or any(w.startswith(f) for w in said for f in spelt):
            continue
        missing.append(number)
    return missing


def verb_forms(text: str, lang: str) -> list[str]:
    """The words of `text` that are verb forms of `lang` (`VERB_FORMS`)."""
    verbs = VERB_FORMS[_check(lang)]
    if lang in CASED:
        return [w for w in words(text) if w in verbs]
    return [w for w in words(text) if w.lower() in verbs]


def repeated_verb(translation: str, reference: str, lang: str) -> bool:
    """At least two verb forms, and more than the reference has."""
    n = len(verb_forms(translation, lang))
    return n >= 2 and n > len(verb_forms(reference, lang))


def same_verb_twice(translation: str, reference: str, lang: str) -> bool:
    """One verb form written at least twice, more often than in the reference (the
    strictest repeat: "Zwei Pudel rennen rennen durch den Schnee.")."""
    said, ref = verb_forms(translation, lang), verb_forms(reference, lang)
    return any(said.count(v) >= 2 and said.count(v) > ref.count(v) for v in set(said))


def _check(lang: str) -> str:
    if lang not in VERB_FORMS:
        raise ValueError(f"translation error counts know {', '.join(LANGS)}, not {lang!r}")
    return lang


def _share(count: int, n: int) -> float:
    return round(100.0 * count / n, 1) if n else 0.0


def error_stats(
    sources: Sequence[str],
    translations: Sequence[str],
    references: Sequence[str],
    lang: str,
    *,
    examples: int = 3,
) -> dict[str, Any]:
    """Shares (in %) of sentences with a repeated verb (and among them one verb form said
    twice) and with a dropped number word, for the translations and, as a floor, for the
    references (`dropped_number` of the reference
    against the source; `repeated_verb` is 0 for a reference by definition). Sentences with
    a number in the source are the base of `dropped_number_of_numbered`."""
    if not len(sources) == len(translations) == len(references):
        raise ValueError("sources, translations and references must be equally many")
    _check(lang)
    n = len(sources)
    numbered = [i for i, s in enumerate(sources) if source_numbers(s)]
    dropped = [i for i in numbered if dropped_numbers(sources[i], translations[i], lang)]
    ref_dropped = [i for i in numbered if dropped_numbers(sources[i], references[i], lang)]
    doubled = [i for i in range(n) if repeated_verb(translations[i], references[i], lang)]
    twice = [i for i in doubled if same_verb_twice(translations[i], references[i], lang)]

    def shown(ids: list[int]) -> list[dict[str, str]]:
        return [{"source": sources[i], "translation": translations[i],
                 "reference": references[i]} for i in ids[:examples]]  # fmt: skip

    return {
        "n": n,
        "lang": lang,
        "repeated_verb": {"count": len(doubled), "share": _share(len(doubled), n)},
        "same_verb_twice": {"count": len(twice), "share": _share(len(twice), n)},
        "dropped_number": {
            "count": len(dropped),
            "share": _share(len(dropped), n),
            "of_numbered": _share(len(dropped), len(numbered)),
        },
        "numbered_sources": len(numbered),
        "reference_dropped_number": {
            "count": len(ref_dropped),
            "share": _share(len(ref_dropped), n),
            "of_numbered": _share(len(ref_dropped), len(numbered)),
        },
        "examples": {"repeated_verb": shown(doubled), "dropped_number": shown(dropped)},
    }
