"""Cheap, language-agnostic entity and number cues for story matching.

Named entities, quantities and dates are what independent reports of one story share even when their
wording (or language) differs, and what two stories *of the same kind* do not share (two earthquakes
have different places, tolls and dates). A real NER model would be better and far slower; these
heuristics aim only at the cues that matter for matching:

* capitalised word sequences (with connectors: "Khan al-Assal", "Banque de France") that are not a
  mere sentence-initial capital, classified by cue words ("President", "Ministry", "M."/"Mme", "Inc",
  "Université", "province") into people, places and organisations;
* a small built-in gazetteer so that names spelt differently across EN/FR/ES/DE ("Allemagne"/"Germany",
  "BCE"/"ECB") get one key; unknown names still match through their folded spelling;
* numbers normalised across conventions ("2.300" == "2,300", "6,4" == "6.4", "3,5 milliards" ==
  "3.5 billion") with a unit class when one follows ("23 morts" == "23 killed" -> ``n:23:dead``);
* calendar dates ("Feb 9", "9 février", "9. Februar" -> ``d:02-09``).

The word lists written here apply to every article. Languages added as data (``transform/data/malay.json``:
Malay and Indonesian, via :mod:`transform.lexicon`) extend them only in their own articles ("5 Mac",
"tiga orang maut", "Komander Maritim Azmir Jaafar"): see :class:`_Lexicon`.

Keys are folded (lower case, no accents), hyphens and apostrophes become spaces; the surface form seen
first is kept for display in event profiles.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources

from transform.amounts import (
    Spelled,
    TokenBreaks,
    ascii_digits,
    cjk_amounts,
    has_cjk,
    language_amounts,
    number_starts,
    spelled,
    spelled_values,
)
from transform.lexicon import LanguageWords, language_words
from transform.text import _wordlist, fold, space_out_no_space_scripts, stopwords_for, words

__all__ = ["CURRENCY_CODES", "NATIONALITY_WORDS", "ORGANISATIONS", "PLACES", "Cues", "extract_cues", "outlet_keys"]


@dataclass(frozen=True)
class Cues:
    """What one article says about *who/where/how many/when*, as comparable keys."""

    places: frozenset[str] = frozenset()
    people: frozenset[str] = frozenset()
    organisations: frozenset[str] = frozenset()
    others: frozenset[str] = frozenset()  # proper nouns we could not classify: still useful to match
    numbers: frozenset[str] = frozenset()
    dates: frozenset[str] = frozenset()
    # key -> display form, e.g. ("khan al assal", "Khan al-Assal"); a tuple keeps the value hashable.
    surfaces: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def display(self) -> dict[str, str]:
        return dict(self.surfaces)


# --- tokenisation with positions ------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[^\W\d_][^\W_]*(?:[-'’][^\W_]+)*|\d+(?:[.,\u00a0\u202f\u2009' ]\d+)*", re.UNICODE)
_BOUNDARY_CHARS = frozenset('.!?…:;«»"“”„()[]—–|•\n\r\t*#')
_ELISIONS = frozenset({"l", "d", "j", "m", "n", "s", "t", "c", "qu", "jusqu", "lorsqu", "puisqu", "quoiqu"})
_ABBREVIATIONS = frozenset({"m", "mme", "mlle", "mr", "mrs", "ms", "dr", "st", "sr", "sra", "prof", "gen", "me"})
_CONNECTORS = frozenset(
    {"of", "the", "de", "du", "des", "la", "le", "les", "d", "l", "al", "el", "von", "van", "der", "den",
     "del", "di", "da", "dos", "das", "bin", "ibn", "for", "on", "sur", "en", "&"}
)  # fmt: skip
# Common nouns that open sentences before a name ("Operator Aegean Lines said..."): not part of it.
_DESCRIPTORS = frozenset(
    {"operator", "carrier", "firm", "insurer", "lender", "retailer", "automaker", "carmaker", "rival",
     "shipowner", "owner", "developer", "manufacturer", "broadcaster", "startup", "striker", "midfielder",
     "defender", "goalkeeper", "coach", "singer", "actor", "actress", "author", "director", "filmmaker",
     "armateur", "operateur", "constructeur", "assureur", "distributeur", "attaquant", "milieu",
     "defenseur", "gardien", "entraineur", "chanteur", "chanteuse", "acteur", "actrice", "auteur",
     "realisateur", "realisatrice", "ecrivain", "ecrivaine", "romancier", "romanciere", "selon",
     "according", "photo", "video", "source", "sources", "update", "breaking", "exclusive"}
)  # fmt: skip
_CLAN_PREFIXES = frozenset({"al", "el", "ad", "ash", "as", "an", "ben", "bin", "abu", "ibn"})

_PERSON_TITLES = frozenset(
    {"president", "presidente", "prime", "minister", "ministre", "ministro",
     "chancellor", "chancelier", "kanzler", "kanzlerin", "bundeskanzler", "governor", "gouverneur",
     "mayor", "maire", "senator", "senateur", "senatrice", "judge", "juge", "general", "captain",
     "capitaine", "colonel", "commander", "commandant", "pope", "pape", "king", "roi", "queen", "reine",
     "prince", "princess", "princesse", "sheikh", "cheikh", "mr", "mrs", "ms", "dr", "m", "mme", "mlle",
     "me", "sr", "sra", "herr", "frau", "prof", "professor", "professeur", "sir", "lord", "dame",
     "inspector", "sergeant", "detective", "chief", "ceo", "spokesman", "spokeswoman", "spokesperson",
     "director", "directeur", "directrice", "secretary", "secretaire", "ambassador", "ambassadeur",
     "deputy", "depute", "deputee", "lawmaker", "rep", "sen", "gov", "lt", "col", "gen", "sgt", "adm",
     "admiral", "amiral", "cardinal", "bishop", "eveque", "imam", "rabbi", "rabbin", "father", "abbe",
     "coach", "entraineur", "prosecutor", "procureur", "procureure", "councillor", "councilman",
     "prasident", "prasidentin", "ministerin", "burgermeister", "burgermeisterin", "sprecher",
     "sprecherin", "direktor", "direktorin", "richter", "richterin", "staatsanwalt", "staatsanwaltin",
     "chefin", "senor", "senora", "alcalde", "alcaldesa", "presidenta", "portavoz", "juez", "jueza",
     "chair", "chairman", "chairwoman", "chairperson", "vice", "head", "premier", "pm"}
)  # fmt: skip
_PERSON_CONTEXT = frozenset(
    {"ministre", "president", "presidente", "maire", "juge", "procureur", "procureure", "porte",
     "parole", "spokesman", "spokeswoman", "spokesperson", "chief", "head", "director", "directeur",
     "directrice", "secretary", "secretaire", "minister", "chancellor", "general", "avocat", "avocate",
     "lawyer", "attorney", "sagte", "dijo", "declare", "declaree", "explique", "ajoute", "said", "says",
     "told", "by", "par", "economist", "economiste", "analyst", "analyste", "ceo", "founder",
     "fondateur", "fondatrice", "leader", "chef", "dirigeant", "dirigeante", "mr", "mrs", "ms", "m",
     "mme", "correspondent", "senor", "senora", "herr", "frau", "accuse", "accusee", "defendant",
     "victim", "victime", "suspect", "suspecte", "witness", "temoin", "resident", "habitant",
     "habitante", "farmer", "agriculteur", "agricultrice", "driver", "chauffeur", "owner",
     "proprietaire", "officer", "officier", "professor", "professeur", "chairman", "chairwoman",
     "presidenta", "alcalde", "alcaldesa", "burgermeister", "burgermeisterin"}
)  # fmt: skip
_ORG_WORDS = frozenset(
    {"ministry", "ministere", "ministerio", "ministerium", "department", "bank", "banque", "banco",
     "council", "conseil", "consejo", "rat", "agency", "agence", "agencia", "agentur", "party", "parti",
     "partido", "partei", "court", "cour", "tribunal", "gericht", "police", "polizei", "policia",
     "gendarmerie", "company", "compagnie", "group", "groupe", "grupo", "gruppe", "union", "association",
     "federation", "commission", "comision", "kommission", "institute", "institut", "instituto",
     "university", "universite", "universidad", "universitat", "foundation", "fondation", "fundacion",
     "stiftung", "inc", "corp", "corporation", "ltd", "sa", "sas", "sarl", "gmbh", "ag", "plc", "llc",
     "spa", "nv", "bv", "co", "airlines", "airways", "airline", "authority", "autorite", "autoridad",
     "behorde", "office", "service", "services", "committee", "comite", "comité", "parliament",
     "parlement", "parlamento", "bundestag", "assembly", "assemblee", "asamblea", "senate", "senat",
     "senado", "army", "armee", "ejercito", "navy", "marine", "forces", "force", "guard", "garde",
     "hospital", "hopital", "clinic", "clinique", "school", "ecole", "escuela", "schule", "club", "fc",
     "news", "times", "journal", "press", "presse", "network", "reseau", "red", "museum",
     "musee", "museo", "theatre", "opera", "orchestra", "orchestre", "festival", "prefecture",
     "mairie", "ayuntamiento", "rathaus", "directorate", "direction", "board", "fund",
     "fonds", "fondo", "trust", "holdings", "holding", "motors", "energy", "energie", "technologies",
     "systems", "pharma", "laboratories", "laboratoires", "brigade", "regiment", "commissariat",
     "syndicat", "sindicato", "gewerkschaft", "confederation", "coalition", "front", "movement",
     "mouvement", "movimiento", "alliance", "federal", "national", "nationale", "nacional",
     "organisation", "organization", "organizacion", "observatory", "observatoire", "centre", "center",
     "centro", "zentrum", "exchange", "bourse", "railways", "chemins", "port", "airport", "aeroport",
     "administration", "reserve", "bureau", "biotherapeutics", "therapeutics", "pharmaceuticals", "bancorp",
     "capital", "partners", "ventures", "industries", "telecom", "media", "studios", "records", "label"}
)  # fmt: skip
_PLACE_WORDS = frozenset(
    {"province", "provincia", "provinz", "district", "distrito", "county", "comte", "region",
     "city", "ville", "ciudad", "stadt", "island", "ile", "isla", "insel", "islands", "iles", "mount",
     "mont", "monte", "river", "fleuve", "riviere", "rio", "fluss", "lake", "lac", "lago", "see", "bay",
     "baie", "bahia", "valley", "vallee", "valle", "tal", "gulf", "golfe", "golfo", "sea", "mer", "mar",
     "strait", "detroit", "estrecho", "canal", "peninsula", "peninsule", "desert", "forest", "foret",
     "bosque", "wald", "coast", "cote", "costa", "kuste", "street", "rue", "calle", "strasse", "avenue",
     "boulevard", "square", "place", "plaza", "platz", "bridge", "pont", "puente", "brucke", "quarter",
     "quartier", "barrio", "viertel", "state", "etat", "estado", "territory", "territoire", "department",
     "departement", "oblast", "prefecture", "canton", "arrondissement", "commune", "municipality",
     "municipio", "village", "pueblo", "dorf", "town", "bourg", "heights", "hills", "mountains",
     "montagnes", "alps", "alpes", "highway", "autoroute", "route", "station", "gare"}
)  # fmt: skip
_PLACE_CONTEXT = frozenset(
    {"in", "near", "outside", "at", "from", "a", "au", "aux", "en", "pres", "vers", "dans", "de",
     "province", "provincia", "district", "region", "city", "ville", "town", "village", "capital",
     "capitale", "commune", "departement", "quartier", "port", "island", "ile", "cerca", "bei", "nahe",
     "im", "nach", "aus", "suburb", "banlieue", "north", "south", "east", "west", "nord", "sud", "est",
     "ouest", "northern", "southern", "eastern", "western", "central", "oriental", "occidental",
     "septentrional", "meridional", "epicentre", "epicenter"}
)  # fmt: skip
# Context words strong enough on their own (the weak ones: "in", "de", "à" need a gazetteer-free guess
# that the word is not a month, a person or an organisation).
_STRONG_PLACE_CONTEXT = _PLACE_CONTEXT - {"in", "at", "from", "a", "au", "aux", "en", "de", "dans", "vers"}

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "january jan janvier janv enero januar jaenner января январь",
        "february feb fevrier fevr febrero februar февраля февраль",
        "march mar mars marzo marz марта март",
        "april apr avril abril апреля апрель",
        "may mai mayo мая май",
        "june jun juin junio juni июня июнь",
        "july jul juillet juil julio juli июля июль",
        "august aug aout agosto августа август",
        "september sept sep septembre septiembre сентября сентябрь",
        "october oct octobre octubre oktober okt октября октябрь",
        "november nov novembre noviembre ноября ноябрь",
        "december dec decembre diciembre dezember dez декабря декабрь",
    ),
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number
_WEEKDAYS = frozenset(
    _wordlist(
        "monday tuesday wednesday thursday friday saturday sunday lundi mardi mercredi jeudi vendredi samedi "
        "dimanche lunes martes miercoles jueves viernes sabado domingo montag dienstag mittwoch donnerstag "
        "freitag samstag sonntag"
    )
)
# Capitalised words that are never names: calendar words and sentence openers common in news prose.
_NOT_NAMES = (
    frozenset(_MONTHS)
    | _WEEKDAYS
    | frozenset(
        _wordlist(
            "gmt utc cet am pm a.m p.m covid internet web online breaking update updated exclusive live video "
            "photo photos watch read more follow subscribe advertisement etat"
        )
    )
)


@dataclass(slots=True)
class _Token:
    text: str  # original surface
    key: str  # folded key
    start: int
    end: int
    sentence_start: bool
    gap_clean: bool  # only plain spaces between the previous token and this one


def _tokens(text: str) -> list[_Token]:
    # Hot path (every article body): a plain single space between tokens is by far the most common
    # gap, so it skips the boundary analysis; the general branch below handles everything else.
    out: list[_Token] = []
    append = out.append
    key_of = _key_cached
    previous_end = 0
    previous_text = ""
    after_possessive = False
    for match in _TOKEN_RE.finditer(text):
        surface = match.group()
        start = match.start()
        gap = text[previous_end:start]
        if gap == " " and out:
            boundary = False
            clean = not after_possessive
        else:
            stripped = gap.strip()
            abbreviation_dot = stripped == "." and key_of(previous_text) in _ABBREVIATIONS
            dash = stripped in ("-", "--")  # "ANKARA, Feb 9 - Residents fled"
            boundary = not out or dash or (not _BOUNDARY_CHARS.isdisjoint(gap) and not abbreviation_dot)
            # "Turkey's Malatya province": a possessive ends a name, the next capital starts another
            clean = bool(out) and (stripped == "" or abbreviation_dot) and "\n" not in gap and not after_possessive
        after_possessive = surface[-2:] in _POSSESSIVE_ENDINGS
        if "'" not in surface and "’" not in surface:
            append(_Token(surface, key_of(surface), start, start + len(surface), boundary, clean))
            previous_end = match.end()
            previous_text = surface
            continue
        parts = _split_elision(surface)
        offset = start
        for index, part in enumerate(parts):
            append(
                _Token(
                    text=part,
                    key=key_of(part),
                    start=offset,
                    end=offset + len(part),
                    sentence_start=boundary and index == 0,
                    gap_clean=clean or index > 0,
                )
            )
            offset += len(part) + 1
        previous_end = match.end()
        previous_text = parts[-1] if parts else surface
    return out


_POSSESSIVE_ENDINGS = frozenset({"'s", "’s", "'S", "’S"})
_APOSTROPHE_RE = re.compile(r"['’]")


def _split_elision(surface: str) -> list[str]:
    """ "l'AFAD" -> ["l", "AFAD"], "Turkey's" -> ["Turkey"], "O'Brien" stays whole."""
    pieces = _APOSTROPHE_RE.split(surface)
    if len(pieces) == 1:
        return [surface]
    if pieces[-1] in ("s", "S") and len(pieces) == 2:
        return [pieces[0]]
    if _key(pieces[0]) in _ELISIONS:
        rest = surface[len(pieces[0]) + 1 :]
        return [pieces[0], *_split_elision(rest)] if rest else [pieces[0]]
    return [surface]


def _key(surface: str) -> str:
    return _key_cached(surface)


_KEY_SPLIT_RE = re.compile(r"[-'’.\s]+")


@lru_cache(maxsize=65536)
def _key_cached(surface: str) -> str:
    return " ".join(_KEY_SPLIT_RE.split(fold(surface))).strip()


def _is_capitalised(token: _Token) -> bool:
    first = token.text[0]
    if first.isupper() or first.istitle():
        return True
    # "al-Assal", "el-Sisi", "ben-Gvir": lower-case clan prefix before a capital.
    head, _, tail = token.text.partition("-")
    return bool(tail) and head.lower() in _CLAN_PREFIXES and tail[:1].isupper()


def _is_acronym(surface: str) -> bool:
    letters = surface.replace("-", "").replace(".", "")
    return 2 <= len(letters) <= 6 and letters.isalpha() and letters.isupper()


# --- proper-noun sequences ------------------------------------------------------------------------


@dataclass
class _Candidate:
    words: list[_Token]
    before: _Token | None
    after: _Token | None
    at_start: bool

    @property
    def key(self) -> str:
        return " ".join(w.key for w in self.words)

    @property
    def surface(self) -> str:
        return " ".join(w.text for w in self.words)


def _sequences(tokens: list[_Token], connectors: frozenset[str] = _CONNECTORS) -> list[_Candidate]:
    out: list[_Candidate] = []
    i = 0
    n = len(tokens)
    while i < n:
        token = tokens[i]
        if not _is_capitalised(token) or token.text[0].isdigit():
            i += 1
            continue
        j = i
        while j + 1 < n and tokens[j + 1].gap_clean and not tokens[j + 1].sentence_start:
            nxt = tokens[j + 1]
            if _is_capitalised(nxt) and not nxt.text[0].isdigit():
                j += 1
                continue
            # connector words continue a name only when a capitalised word follows ("Banque de France")
            if (
                nxt.key in connectors
                and j + 2 < n
                and tokens[j + 2].gap_clean
                and _is_capitalised(tokens[j + 2])
                and not tokens[j + 2].text[0].isdigit()
            ):
                j += 2
                continue
            break
        out.append(
            _Candidate(
                words=tokens[i : j + 1],
                before=tokens[i - 1] if i > 0 and token.gap_clean else None,
                after=tokens[j + 1] if j + 1 < n and tokens[j + 1].gap_clean else None,
                at_start=token.sentence_start,
            )
        )
        i = j + 1
    return out


def _trim(words: list[_Token], stop: frozenset[str], lexicon: _Lexicon) -> list[_Token]:
    """Drop leading/trailing connectors and sentence-initial function words ("The", "Le", "Selon") or
    descriptors ("Operator Aegean Lines", "Rival Northwind")."""
    connectors, not_names = lexicon.connectors, lexicon.not_names
    while words and (
        words[0].key in stop
        or words[0].key in connectors
        or words[0].key in not_names
        or (stop and words[0].key in lexicon.descriptors)
    ):
        words = words[1:]
    while words and (words[-1].key in connectors or words[-1].key in not_names):
        words = words[:-1]
    return words


class _Collector:
    """Accumulates classified keys for one document and remembers a display form per key."""

    def __init__(self) -> None:
        self.kinds: dict[str, set[str]] = {
            "place": set(),
            "person": set(),
            "organisation": set(),
            "other": set(),
        }
        self.surfaces: dict[str, str] = {}

    def add(self, kind: str, key: str, surface: str) -> None:
        if not key or len(key) < 2:
            return
        self.kinds[kind].add(key)
        self.surfaces.setdefault(key, surface)

    def person_by_surname(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key in self.kinds["person"]:
            parts = key.split()
            if len(parts) >= 2:
                out.setdefault(parts[-1], key)
        return out


def _classify(candidate: _Candidate, collector: _Collector, stop: frozenset[str], lexicon: _Lexicon) -> None:
    words = _trim(list(candidate.words), stop if candidate.at_start else frozenset(), lexicon)
    if not words:
        return
    keys = [w.key for w in words]
    # A person title inside the sequence: what follows is the person, what precedes may be an org or a
    # place ("ECB President Helena Vossberg", "Interior Minister Kerem Aydinli", "M. Dupont").
    for index in range(len(keys) - 1, -1, -1):
        if keys[index].rsplit(" ", 1)[-1] not in lexicon.person_titles:
            continue
        first = index + 1  # Malay ranks go on after their head word: "Komander Maritim Azmir Jaafar"
        while first < len(words) and words[first].key in lexicon.title_qualifiers:
            first += 1
        person = _trim(words[first:], frozenset(), lexicon)
        if person and any(w.key in lexicon.not_person_words for w in person):
            break  # "President Hotel Group": a name that contains a title word
        if person:
            collector.add("person", " ".join(w.key for w in person), " ".join(w.text for w in person))
        # What precedes a title is an institution ("ECB President X") or a portfolio ("Interior
        # Minister X", or a bare role "Interior Minister"): only known names and acronyms are kept.
        for word in words[:index] or [words[index]]:
            for part in re.split(r"[-'’]", word.text):
                if _is_acronym(part) or fold(part) in lexicon.places or fold(part) in lexicon.organisations:
                    _classify_known_or_other(
                        [_Token(part, _key(part), word.start, word.end, False, True)],
                        collector,
                        lexicon,
                        before=None,
                        after=None,
                        generic=False,
                    )
        return
    _classify_known_or_other(words, collector, lexicon, before=candidate.before, after=candidate.after)


def _classify_known_or_other(
    words: list[_Token],
    collector: _Collector,
    lexicon: _Lexicon,
    *,
    before: _Token | None,
    after: _Token | None,
    generic: bool = True,
) -> None:
    key = " ".join(w.key for w in words)
    surface = " ".join(w.text for w in words)
    keys = [w.key for w in words]
    places, organisations = lexicon.places, lexicon.organisations
    if key in organisations and (len(key) > 3 or _is_acronym(surface)):
        collector.add("organisation", organisations[key], _canonical_display(organisations[key], "organisation"))
        return
    if key in places and (len(key) > 3 or _is_acronym(surface) or surface[:1].isupper()):
        collector.add("place", places[key], _canonical_display(places[key], "place"))
        return
    if any(k in lexicon.org_words for k in keys):
        if len(keys) > 1 or not generic:
            collector.add("organisation", key, surface)
        return
    place_words = lexicon.place_words
    if any(k in place_words for k in keys) or (after is not None and after.key in place_words):
        collector.add("place", key, surface)
        return
    if len(words) == 1 and _is_acronym(surface):
        collector.add("organisation", key, surface)
        return
    before_key = before.key if before is not None else ""
    if before_key in lexicon.person_context and all(w.text[:1].isupper() for w in words):
        collector.add("person", key, surface)
        return
    if before_key in lexicon.strong_place_context:
        collector.add("place", key, surface)
        return
    plain_names = [w for w in words if w.key not in lexicon.connectors]
    looks_like_name = all(w.text[:1].isupper() and not w.text.isupper() for w in words)
    if generic and 2 <= len(plain_names) <= 4 and len(plain_names) == len(words) and looks_like_name:
        collector.add("person", key, surface)
        return
    if len(words) == 1 and before_key in lexicon.place_context and before is not None and before.text.islower():
        collector.add("place", key, surface)
        return
    if generic:
        collector.add("other", key, surface)


def _names(text: str, title: str, language: str | None, lexicon: _Lexicon) -> _Collector:
    stop = stopwords_for(language)
    collector = _Collector()
    tokens = _tokens(text)
    candidates = _sequences(tokens, lexicon.connectors)
    dateline_end = _dateline(text, collector, lexicon)
    if dateline_end:
        candidates = [c for c in candidates if c.words[0].start >= dateline_end]
    if language == "de":
        candidates = [c for c in _split_german(candidates) if _plausible_german_name(c)]
    mid_sentence_keys = {c.key for c in candidates if not c.at_start}
    mid_sentence_keys |= {w.key for c in candidates if not c.at_start for w in c.words}
    deferred: list[_Candidate] = []
    for candidate in candidates:
        if candidate.at_start and len(candidate.words) == 1:
            deferred.append(candidate)
            continue
        _classify(candidate, collector, stop, lexicon)
    # A lone capitalised word opening a sentence is a name only if the text also uses it mid-sentence,
    # it is a known name, or it is an acronym ("Residents fled..." is not a name; "Malatya was..." is).
    surnames = collector.person_by_surname()
    for candidate in deferred:
        word = candidate.words[0]
        if word.key in stop or word.key in lexicon.not_names:
            continue
        if word.key in surnames:
            collector.add("person", surnames[word.key], collector.surfaces.get(surnames[word.key], word.text))
        elif (
            word.key in lexicon.places
            or word.key in lexicon.organisations
            or _is_acronym(word.text)
            or word.key in mid_sentence_keys
        ):
            _classify(candidate, collector, stop, lexicon)
    _resolve_surnames(collector, lexicon.places)
    _known_phrases(text, collector, lexicon)
    _title_names(title, collector, lexicon)
    if lexicon.place_prefixes:
        _unprefixed_places(collector, lexicon)
    if language not in (None, "en"):
        for token in tokens:
            if token.text.islower() and token.key in NATIONALITY_WORDS:
                collector.add("place", PLACES[token.key], _canonical_display(PLACES[token.key], "place"))
    return collector


_GERMAN_NOUN_ENDINGS = (
    "ung", "heit", "keit", "schaft", "tion", "tat", "ismus", "nis", "tum", "chen", "lein", "ate", "ern",
    "ten", "gen", "sten", "rin", "rat", "ier", "ie",
)  # fmt: skip


def _split_german(candidates: list[_Candidate]) -> list[_Candidate]:
    """ "Frankfurt den Einlagensatz": German articles between capitalised nouns are not name connectors."""
    out: list[_Candidate] = []
    for candidate in candidates:
        run: list[_Token] = []
        at_start = candidate.at_start
        for word in candidate.words:
            if word.key in _CONNECTORS and word.key not in ("von", "van", "al", "el", "bin", "ibn"):
                if run:
                    out.append(_Candidate(run, None, None, at_start))
                run, at_start = [], False
                continue
            run.append(word)
        if run:
            out.append(_Candidate(run, None, None, at_start))
    return out


def _plausible_german_name(candidate: _Candidate) -> bool:
    """German capitalises every noun, so a capital says little: keep known names, acronyms, titled
    people ("Präsidentin Helena Vossberg") and short runs of capitalised words that do not look like
    common nouns ("Matthias Brenner"), and drop the rest ("Sparkassen und Volksbanken")."""
    keys = [w.key for w in candidate.words]
    joined = " ".join(keys)
    if joined in PLACES or joined in ORGANISATIONS:
        return True
    if any(_is_acronym(part) for w in candidate.words for part in w.text.split("-")):
        return True
    if any(k.rsplit(" ", 1)[-1] in _PERSON_TITLES for k in keys):
        return True
    if any(k in _CONNECTORS and k not in ("von", "van", "al", "el", "bin", "ibn") for k in keys):
        return False
    if any(k in PLACES for k in keys):
        return True
    return 2 <= len(keys) <= 3 and not any(k.endswith(_GERMAN_NOUN_ENDINGS) or len(k) > 12 for k in keys)


def _known_phrases(text: str, collector: _Collector, lexicon: _Lexicon) -> None:
    """Multi-word gazetteer names regardless of capitalisation: French and Spanish write "Banque centrale
    européenne", "États-Unis", "zone euro" with one capital or none."""
    tokens = words(text)
    for size in (4, 3, 2):
        for i in range(len(tokens) - size + 1):
            if tokens[i] not in lexicon.multiword_first_words:
                continue
            key = " ".join(tokens[i : i + size])
            if key in lexicon.multiword_organisations:
                canonical = lexicon.organisations[key]
                collector.add("organisation", canonical, _canonical_display(canonical, "organisation"))
            elif key in lexicon.multiword_places:
                canonical = lexicon.places[key]
                collector.add("place", canonical, _canonical_display(canonical, "place"))


_DATELINE_RE = re.compile(r"\A\s*([^\W\d_a-z]{2,}(?:[\s'’.\-]+[^\W\d_a-z]{2,}){0,3})\s*(?:,|\(|—|–|-\s)")


def _dateline(text: str, collector: _Collector, lexicon: _Lexicon) -> int:
    """ "ANKARA, Feb 9 -", "LE HAVRE, France (Wire) -": the capitals opening a wire story are a place,
    not an acronym. Returns where the dateline ends (0 without one)."""
    match = _DATELINE_RE.match(text)
    if match is None or any(ch.islower() for ch in match.group(1)):
        return 0
    names = [w for w in re.split(r"[\s'’.\-]+", match.group(1)) if w]
    while names and _key(names[0]) in _CONNECTORS:
        names = names[1:]
    if not names:
        return 0
    key = " ".join(_key(w) for w in names)
    if key in lexicon.organisations and key not in lexicon.places:
        return 0
    canonical = lexicon.places.get(key, key)
    collector.add("place", canonical, _canonical_display(canonical, "place"))
    return match.end(1)


def _canonical_display(key: str, kind: str) -> str:
    """How a gazetteer key is shown: "United States", "Euro Zone", "ECB"."""
    if kind == "organisation" and len(key) <= 5 and " " not in key:
        return key.upper()
    return " ".join(part if part in _CONNECTORS else part.capitalize() for part in key.split())


def outlet_keys(name: str) -> frozenset[str]:
    """Keys an outlet's own name produces in its articles ("(Meridian Wire) -", "(AHP)"): they say who
    published, not what happened, and must not make two stories of one outlet look alike."""
    parts = [p for p in re.split(r"[\s'’.\-]+", name) if p]
    capitals = [p for p in parts if p[:1].isupper()]
    keys = {_key(name)}
    if len(capitals) >= 2:
        keys.add("".join(p[0] for p in capitals).lower())
    return frozenset(k for k in keys if k)


def _resolve_surnames(collector: _Collector, places: dict[str, str]) -> None:
    """Later mentions by surname alone ("Aydinli said") join the full name found elsewhere."""
    surnames = collector.person_by_surname()
    for kind in ("other", "place"):
        for key in list(collector.kinds[kind]):
            if key in surnames and key not in places:
                collector.kinds[kind].discard(key)
                collector.kinds["person"].add(surnames[key])


def _title_names(title: str, collector: _Collector, lexicon: _Lexicon) -> None:
    """Headlines are often Title Case, so capitalisation says nothing there: only accept word runs that
    are known names (gazetteer) or that the body already established."""
    if not title:
        return
    tokens = [t for t in _tokens(title) if not t.text[0].isdigit()]
    known: dict[str, str] = {}
    for kind, keys in collector.kinds.items():
        for key in keys:
            known.setdefault(key, kind)
    for size in (4, 3, 2, 1):
        for i in range(len(tokens) - size + 1):
            window = tokens[i : i + size]
            if size > 1 and not all(w.gap_clean for w in window[1:]):
                continue
            key = " ".join(w.key for w in window)
            surface = " ".join(w.text for w in window)
            if key in known:
                continue
            if key in lexicon.places and (len(key) > 3 or _is_acronym(surface)):
                collector.add("place", lexicon.places[key], _canonical_display(lexicon.places[key], "place"))
            elif key in lexicon.organisations and (len(key) > 3 or _is_acronym(surface)):
                canonical = lexicon.organisations[key]
                collector.add("organisation", canonical, _canonical_display(canonical, "organisation"))
            elif size == 1 and _is_acronym(surface) and key not in lexicon.not_names:
                collector.add("organisation", key, surface)


# --- numbers and dates ----------------------------------------------------------------------------

# Currency codes written before an amount, glued or spaced: "RM1.2 billion" and "RM1.2 bilion" (Malaysia),
# "Rp 3 trillion" and "Rp 3 triliun" (Indonesia), "US$2 billion", "USD2 bilion". Read in every language, like the
# symbols: the English and the Malay report of one figure must give the same money cue, and Malaysian English
# writes the ringgit as "RM" too.
CURRENCY_CODES = ("us$", "usd", "s$", "sgd", "rm", "myr", "rp", "idr")
_NUMBER_RE = re.compile(
    r"(?<![\w.,:/\-])(?:(?P<code>" + "|".join(map(re.escape, CURRENCY_CODES)) + r")|(?P<sign>[$€£¥]))?\s?"
    r"(?P<num>\d{1,3}(?:[.,\u00a0\u202f\u2009' ]\d{3})+(?![\d])|\d+)"
    r"(?:[.,](?P<frac>\d+))?(?P<glued>[^\W\d_]{1,2})?(?![\w:/])(?P<pct>\s?%)?",
    re.UNICODE,
)
_SCALES: dict[str, int] = {
    "thousand": 1_000, "mille": 1_000, "mil": 1_000, "tausend": 1_000, "k": 1_000,
    "million": 1_000_000, "millions": 1_000_000, "millon": 1_000_000, "millones": 1_000_000,
    "millionen": 1_000_000, "mio": 1_000_000, "mn": 1_000_000, "m": 1_000_000,
    "billion": 1_000_000_000, "billions": 1_000_000_000, "milliard": 1_000_000_000,
    "milliards": 1_000_000_000, "milliarde": 1_000_000_000, "milliarden": 1_000_000_000,
    "mrd": 1_000_000_000, "bn": 1_000_000_000, "mil millones": 1_000_000_000,
    "trillion": 1_000_000_000_000, "trillions": 1_000_000_000_000,
}  # fmt: skip
_UNIT_CLASSES: dict[str, str] = {}
for _unit_class, _unit_words in {
    "dead": "killed killing dead deaths death died dying fatalities lives bodies morts mort tues tuees tue "
    "deces victimes muertos muertas fallecidos fallecidas victimas tote toten todesopfer getotet",
    "injured": "injured injuring injuries wounded hurt blesses blessees blesse heridos heridas verletzte "
    "verletzten verletzt",
    "missing": "missing disparus disparues desaparecidos vermisste vermisst",
    "displaced": "displaced evacuated homeless deplaces evacues sinistres desplazados evakuiert obdachlos",
    "arrested": "arrested detained arrests interpelles interpellees arretes arretees gardes detenidos festgenommen",
    "percent": "percent pourcent por ciento prozent %",
    "money": "dollars dollar euros euro pounds livres sterling yen yuan francs usd eur gbp chf roubles rubles $ € £ ¥",
    "distance": "km kilometres kilometers kilometre kilometer miles metres meters m",
    "people": "people persons personnes personas menschen residents habitants habitantes families familles "
    "workers salaries employees employes trabajadores passengers passagers pasajeros miners mineurs villagers",
    "buildings": "buildings homes houses structures batiments maisons immeubles logements viviendas "
    "edificios gebaude hauser warehouses entrepots",
    "points": "points basis pb",
    "years": "years ans anos jahre",
}.items():
    for _word in _unit_words.split():
        _UNIT_CLASSES.setdefault(_word, _unit_class)
_NUMBER_WORDS: dict[str, int] = {}
for _lang_words in (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty",
    "zero un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize "
    "dix-sept dix-huit dix-neuf vingt",
    "cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince dieciseis "
    "diecisiete dieciocho diecinueve veinte",
    "null eins zwei drei vier funf sechs sieben acht neun zehn elf zwolf dreizehn vierzehn funfzehn "
    "sechzehn siebzehn achtzehn neunzehn zwanzig",
):
    for _value, _word in enumerate(_lang_words.split()):
        _NUMBER_WORDS.setdefault(_word, _value)
_NUMBER_WORDS.update({"une": 1, "una": 1, "eine": 1, "dozen": 12, "douzaine": 12, "docena": 12})
_MAGNITUDE_WORDS = frozenset({"magnitude", "magnitud", "starke", "richter"})


def _parse_number(raw: str, frac: str | None) -> Decimal | None:
    """'2.300' -> 2300, '2,300' -> 2300, '1 200' -> 1200, '6,4' -> 6.4 (fraction captured separately)."""
    digits = _DIGIT_SEPARATORS_RE.sub("", raw)
    try:
        value = Decimal(digits)
        if frac:
            value += Decimal(f"0.{frac}")
    except InvalidOperation:
        return None
    return value


def _canonical(value: Decimal) -> str:
    normalised = value.normalize()
    text = format(normalised, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


_AUXILIARIES = frozenset(
    _wordlist(
        "were was have had been are is ont ete sont a avaient fueron han sido son wurden sind waren still "
        "at least au moins al menos mindestens more than plus de mas de"
    )
)
_VERB_UNITS = frozenset({"dead", "injured", "missing", "arrested", "displaced"})
_TOLL_WORDS = frozenset({"toll", "bilan", "balance", "opferzahl"})


# --- built-in gazetteer ---------------------------------------------------------------------------
# Why built in: the pipeline runs offline and cheaply; the point is not coverage (unknown names still
# match through their folded spelling) but agreement across languages on names spelt differently.


def _load_gazetteer() -> dict[str, dict[str, list[str]]]:
    """``transform/data/gazetteer.json``: per table, canonical key -> its variants (folded)."""
    text = resources.files("transform").joinpath("data/gazetteer.json").read_text(encoding="utf-8")
    return {name: table for name, table in json.loads(text).items() if not name.startswith("_")}


def _build(table: dict[str, list[str]]) -> dict[str, str]:
    """Variant -> canonical key; the key is a variant of itself, and the first key to claim a variant keeps it."""
    out: dict[str, str] = {}
    for key, variants in table.items():
        out[key] = key
        for variant in variants:
            out.setdefault(variant, key)
    return out


_GAZETTEER = _load_gazetteer()


PLACES: dict[str, str] = {
    **_build(_GAZETTEER["regions"]),
    **_build(_GAZETTEER["cities"]),
    **_build(_GAZETTEER["countries"]),
}
ORGANISATIONS: dict[str, str] = _build(_GAZETTEER["organisations"])
# Lower-case adjectives that name a country in French/Spanish/German prose ("le ministère turc").
NATIONALITY_WORDS: frozenset[str] = frozenset(
    variant
    for key, variants in _GAZETTEER["countries"].items()
    for variant in variants
    if variant != key and " " not in variant and len(variant) > 3
)
_MULTIWORD_PLACES: frozenset[str] = frozenset(k for k in PLACES if " " in k)
_MULTIWORD_ORGANISATIONS: frozenset[str] = frozenset(k for k in ORGANISATIONS if " " in k)
_MULTIWORD_FIRST_WORDS: frozenset[str] = frozenset(
    k.split()[0] for k in (*_MULTIWORD_PLACES, *_MULTIWORD_ORGANISATIONS)
)


# --- word lists by language ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lexicon:
    """The word lists that cue extraction reads, for one language.

    The built-in lists (English, French, Spanish, German, and Russian months) apply to every article:
    :data:`_BASE_LEXICON`. A language with a data table (:mod:`transform.lexicon`: Malay, Indonesian) reads
    the built-in lists plus its own, only in its own articles, so articles of every other language see exactly
    the built-in lists.
    """

    connectors: frozenset[str]
    not_names: frozenset[str]
    person_titles: frozenset[str]
    title_qualifiers: frozenset[str]
    not_person_words: frozenset[str]  # a word after a title that says the rest is no person ("Hotel Group")
    person_context: frozenset[str]
    org_words: frozenset[str]
    place_words: frozenset[str]
    place_prefixes: frozenset[str]
    place_context: frozenset[str]
    strong_place_context: frozenset[str]
    descriptors: frozenset[str]
    months: dict[str, int]
    month_first: bool  # "Feb 9" is read as a date (Malay and Indonesian write only "9 Februari")
    unit_classes: dict[str, str]
    number_words: dict[str, int]
    scales: dict[str, int]
    glued_scales: dict[str, int]  # "3bn", "RM1.2b": scales written onto a currency amount
    spelled: Spelled  # compound number words ("forty-six", "empat puluh enam")
    number_starts: frozenset[str]  # the words a number in words begins with
    auxiliaries: frozenset[str]
    leading_fillers: frozenset[str]  # "lima lagi masih hilang": words between a count and its verb
    unit_before_count: bool  # Arabic "مصرع ١٤ شخصا وإصابة ٢٣": the word before a count gives its class first
    toll_words: frozenset[str]
    clause_words: frozenset[str]  # "tiga maut manakala 14,238 mangsa": "maut" is not the 14,238's verb
    # The gazetteer, folded variant -> canonical key: the built-in one, plus a language's own names of places
    # and institutions ("Pulau Pinang" -> "penang", "Jabatan Kerja Raya" -> "public works department"), whose
    # canonical keys are what an English report of the same story gives.
    places: dict[str, str]
    organisations: dict[str, str]
    multiword_places: frozenset[str]
    multiword_organisations: frozenset[str]
    multiword_first_words: frozenset[str]


_BASE_LEXICON = _Lexicon(
    connectors=_CONNECTORS,
    not_names=_NOT_NAMES,
    person_titles=_PERSON_TITLES,
    title_qualifiers=frozenset(),
    not_person_words=_ORG_WORDS,
    person_context=_PERSON_CONTEXT,
    org_words=_ORG_WORDS,
    place_words=_PLACE_WORDS,
    place_prefixes=frozenset(),
    place_context=_PLACE_CONTEXT,
    strong_place_context=_STRONG_PLACE_CONTEXT,
    descriptors=_DESCRIPTORS,
    months=_MONTHS,
    month_first=True,
    unit_classes=_UNIT_CLASSES,
    number_words=_NUMBER_WORDS,
    scales=_SCALES,
    glued_scales=spelled().glued_scales,
    spelled=spelled(),
    number_starts=number_starts(_NUMBER_WORDS, spelled()),
    auxiliaries=_AUXILIARIES,
    leading_fillers=frozenset(),
    unit_before_count=False,
    toll_words=_TOLL_WORDS,
    clause_words=frozenset(),
    places=PLACES,
    organisations=ORGANISATIONS,
    multiword_places=_MULTIWORD_PLACES,
    multiword_organisations=_MULTIWORD_ORGANISATIONS,
    multiword_first_words=_MULTIWORD_FIRST_WORDS,
)


def _extended(own: LanguageWords) -> _Lexicon:
    """The built-in lists plus a language's own; where both name a word, the built-in meaning stays."""
    base = _BASE_LEXICON
    months = {**own.months, **base.months}
    place_words = base.place_words | own.place_words
    org_words = base.org_words | own.org_words
    place_context = base.place_context | own.place_context
    places = {**own.places, **base.places}
    organisations = {**own.organisations, **base.organisations}
    multiword_places = frozenset(k for k in places if " " in k)
    multiword_organisations = frozenset(k for k in organisations if " " in k)
    return _Lexicon(
        connectors=(base.connectors - own.not_connectors) | own.connectors,
        not_names=base.not_names | own.weekdays | frozenset(own.months),
        person_titles=base.person_titles | own.person_titles,
        title_qualifiers=own.title_qualifiers,
        # "Pengarah Maritim Zon Semporna", "Ketua Polis Daerah Kuantan": a title before a place or an office
        not_person_words=org_words | place_words,
        person_context=base.person_context | own.person_context,
        org_words=org_words,
        place_words=place_words,
        place_prefixes=own.place_prefixes,
        place_context=place_context,
        strong_place_context=base.strong_place_context | (own.place_context - own.weak_place_context),
        descriptors=base.descriptors | own.descriptors,
        months=months,
        month_first=False,
        unit_classes={**own.units, **base.unit_classes},
        number_words={**own.number_words, **base.number_words},
        scales={**own.scales, **base.scales},
        glued_scales=base.glued_scales,
        spelled=base.spelled,
        number_starts=number_starts({**own.number_words, **base.number_words}, base.spelled),
        auxiliaries=base.auxiliaries | own.auxiliaries,
        leading_fillers=own.leading_fillers,
        unit_before_count=False,
        toll_words=base.toll_words | own.toll_words,
        clause_words=base.clause_words | own.clause_words,
        places=places,
        organisations=organisations,
        multiword_places=multiword_places,
        multiword_organisations=multiword_organisations,
        multiword_first_words=frozenset(k.split()[0] for k in (*multiword_places, *multiword_organisations)),
    )


@lru_cache(maxsize=64)
def _lexicon_for(language: str | None) -> _Lexicon:
    own = language_words(language)
    lexicon = _BASE_LEXICON if own is None else _extended(own)
    amounts = language_amounts(language)
    if amounts is None:
        return lexicon
    # a language's amount words (Russian and Arabic scales and units, Malay classifiers and tens): its own
    # articles only, and where the lists already name a word, its meaning stays
    tables = spelled(language)
    number_words = {**amounts.number_words, **lexicon.number_words}
    return replace(
        lexicon,
        number_words=number_words,
        number_starts=number_starts(number_words, tables),
        scales={**amounts.scales, **lexicon.scales},
        glued_scales=tables.glued_scales,
        spelled=tables,
        unit_classes={**amounts.units, **lexicon.unit_classes},
        toll_words=lexicon.toll_words | amounts.toll_words,
        auxiliaries=lexicon.auxiliaries | amounts.auxiliaries,
        leading_fillers=lexicon.leading_fillers | amounts.leading_fillers,
        unit_before_count=amounts.unit_before_count,
    )


def _unprefixed_places(collector: _Collector, lexicon: _Lexicon) -> None:
    """ "Sungai Golok", "Pulau Mabul" are also "Golok", "Mabul": English reports write "the Golok river",
    "Mabul island", so the name without its generic first word is a place key too."""
    prefixes = lexicon.place_prefixes
    for kind in ("place", "other", "person", "organisation"):
        for key in list(collector.kinds[kind]):
            head, _, rest = key.partition(" ")
            if head in prefixes and rest and rest.split(" ", 1)[0] not in prefixes:
                canonical = lexicon.places.get(rest, rest)
                collector.add("place", canonical, collector.surfaces.get(key, key).split(" ", 1)[-1])


def _unit_after(following: list[str], lexicon: _Lexicon) -> str | None:
    """Unit class of the words right after a number: "23 morts", "23 people killed", "23 personnes ont
    été tuées". Scanning stops at the next number so "2026, à 0,9 %" does not make 2026 a percentage."""
    weak: str | None = None
    unit_classes = lexicon.unit_classes
    for word in following[:5]:
        if word[0].isdigit():
            break
        unit = unit_classes.get(word)
        if unit == "people" and weak is None:
            weak = unit
            continue
        if unit is not None:
            return unit if weak is None or unit in _VERB_UNITS else weak
        if weak is None and word in lexicon.leading_fillers:
            continue
        if weak is None or word not in lexicon.auxiliaries:
            break
    return weak


def _unit_before(preceding: list[str], lexicon: _Lexicon) -> str | None:
    """ "killing at least 23", "injuring 410", "death toll rises to 31"."""
    for word in reversed(preceding[-4:]):
        if word[0].isdigit() or word in lexicon.clause_words:
            return None
        if word in lexicon.toll_words:
            return "dead"
        unit = lexicon.unit_classes.get(word)
        if unit in _VERB_UNITS:
            return unit
    return None


_DIGIT_SEPARATORS_RE = re.compile(r"[.,\u00a0\u202f\u2009' ]")
_FOLLOWING_RE = re.compile(r"[^\W\d_]+|[%$€£¥]|\d+")
_PRECEDING_RE = re.compile(r"[^\W\d_]+|\d+")
_LETTER_RUN_RE = re.compile(r"[^\W\d_]+")


def _numbers(lowered: str, lexicon: _Lexicon) -> set[str]:
    """Number cues of an already folded text."""
    out: set[str] = set()
    scales, unit_classes = lexicon.scales, lexicon.unit_classes
    for match in _NUMBER_RE.finditer(lowered):
        value = _parse_number(match.group("num"), match.group("frac"))
        if value is None:
            continue
        following = _FOLLOWING_RE.findall(lowered, match.end(), match.end() + 60)
        preceding = _PRECEDING_RE.findall(lowered, max(0, match.start() - 40), match.start())
        currency = match.group("sign") is not None or match.group("code") is not None
        glued = match.group("glued")
        if glued is not None:
            # "$3bn", "RM1.2b", "€2.5m": a scale written onto a currency amount; "15km", "5th", "1990s" are no amount
            if not currency or glued not in lexicon.glued_scales:
                continue
            value *= lexicon.glued_scales[glued]
        scale_word = following[0] if following else ""
        if glued is None and scale_word in scales and not (scale_word in ("m", "k") and not currency):
            value *= scales[scale_word]
            following = following[1:]
        is_integer = value == value.to_integral_value() and not match.group("frac")
        unit: str | None = None
        if match.group("pct"):
            unit = "percent"
        elif currency:
            unit = "money"
        else:
            unit = (lexicon.unit_before_count and _unit_before(preceding, lexicon)) or _unit_after(following, lexicon)
            immediate_unit = unit is not None and bool(following) and following[0] in unit_classes
            if is_integer and 1900 <= value <= 2100 and not immediate_unit:
                continue  # a year ("since 2019", "in February 2023, which killed ...")
            if unit is None or unit == "people":
                unit = _unit_before(preceding, lexicon) or unit
            after_magnitude = bool(preceding) and preceding[-1] in _MAGNITUDE_WORDS
            after_magnitude_of = (
                len(preceding) >= 2 and preceding[-2] in _MAGNITUDE_WORDS and preceding[-1] in ("of", "de")
            )
            if after_magnitude or after_magnitude_of:
                unit = "magnitude"
        if unit is None and is_integer and value < 10:
            continue  # "2 sources", "one of 3": too common to tell stories apart
        canon = _canonical(value)
        out.add(f"n:{canon}")
        if unit is not None and unit not in ("people", "years"):
            out.add(f"n:{canon}:{unit}")
    out.update(_spelled_numbers(lowered, lexicon))
    return out


def _spelled_numbers(lowered: str, lexicon: _Lexicon) -> set[str]:
    """Counts written in words, read as the same count in digits would be: "Forty-six residents" gives the
    ``n:46`` of "46 residents" (and of a Chinese "46名居民"), "three houses" the ``n:3`` and ``n:3:buildings`` of
    "3 houses". Only counts of two or more ("one of", "a" are everywhere) and only with a unit: words are numbers
    far less surely than digits ("Eleven" a team, "ten" in a quote). Below ten, the unit must be a class, not mere
    people ("two people" says little, and a Chinese "2人" gives no key either)."""
    out: set[str] = set()
    tokens = _LETTER_RUN_RE.findall(lowered)  # hyphenated words in their parts: "forty-six" is "forty", "six"
    breaks = TokenBreaks(lowered, _LETTER_RUN_RE)  # no number across "twenty. One hundred"
    number_words = lexicon.number_words
    for first, end, value in spelled_values(tokens, number_words, lexicon.spelled, lexicon.number_starts, breaks):
        if value < 2:
            continue
        following = tokens[end : end + 5]
        unit = (lexicon.unit_before_count and _unit_before(tokens[max(0, first - 4) : first], lexicon)) or None
        unit = unit or _unit_after(following, lexicon)
        if unit is None or unit == "people":
            unit = _unit_before(tokens[max(0, first - 4) : first], lexicon) or unit
        classified = unit is not None and unit not in ("people", "years")
        if unit is None or (value < 10 and not classified):
            continue
        out.add(f"n:{value}")
        if classified:
            out.add(f"n:{value}:{unit}")
    return out


_DATE_DM_RE = re.compile(r"\b(\d{1,2})(?:er|st|nd|rd|th|º|o)?\.?\s+(?:de\s+)?([^\W\d_]{3,10})\.?\b")
_DATE_MD_RE = re.compile(r"\b([^\W\d_]{3,10})\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b(?!\s*(?:[,.]\d|%))")


# "4月14日" / "4月14号": Chinese and Japanese dates carry their own month and day markers.
_DATE_CJK_RE = re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")


def _dates(lowered: str, lexicon: _Lexicon) -> set[str]:
    """Date cues of an already folded text."""
    out: set[str] = set()
    months = lexicon.months
    for month, day in _DATE_CJK_RE.findall(lowered):
        if 1 <= int(month) <= 12 and 1 <= int(day) <= 31:
            out.add(f"d:{int(month):02d}-{int(day):02d}")
    for day, month in _DATE_DM_RE.findall(lowered):
        if month in months and 1 <= int(day) <= 31:
            out.add(f"d:{months[month]:02d}-{int(day):02d}")
    if not lexicon.month_first:
        return out
    for month, day in _DATE_MD_RE.findall(lowered):
        if month in months and month not in ("may", "mar", "mai") and 1 <= int(day) <= 31:
            out.add(f"d:{months[month]:02d}-{int(day):02d}")
    return out


def extract_cues(title: str, text: str, language: str | None) -> Cues:
    """All cues of one article. Pure and deterministic: the same input always gives the same keys."""
    lexicon = _lexicon_for(language)
    collector = _names(text, title, language, lexicon)
    kinds = collector.kinds
    lowered = ascii_digits(fold(f"{title}\n{text}"))  # folded once for both numbers and dates
    numbers: set[str] = set()
    numbers_text = lowered
    if has_cjk(lowered):  # "12亿美元", "至少12人死亡": read here, and blanked for the generic reader
        numbers, numbers_text = cjk_amounts(lowered)
    return Cues(
        places=frozenset(kinds["place"]),
        people=frozenset(kinds["person"]),
        organisations=frozenset(kinds["organisation"]),
        others=frozenset(kinds["other"] - kinds["place"] - kinds["person"] - kinds["organisation"]),
        numbers=frozenset(numbers | _numbers(space_out_no_space_scripts(numbers_text), lexicon)),
        dates=frozenset(_dates(lowered, lexicon)),
        surfaces=tuple(sorted(collector.surfaces.items())),
    )
