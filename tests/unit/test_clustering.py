"""Story clustering: multilingual coverage of one story joins, different incidents stay apart, restarts
reproduce state exactly, merges keep a stable survivor."""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from transform.clustering import (
    Assignment,
    ClusteringConfig,
    ClusteringError,
    StoryClusterer,
    UnknownEvent,
    _Event,
    _features,
    _fixed,
    _fixed_sum,
    _Keyed,
    _member,
    _strongest,
    _Vocabulary,
)
from transform.documents import ArticleDoc
from transform.entities import extract_cues

T0 = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)


def doc(article_id: str, title: str, text: str, *, lang: str, hours: float, source: str = "Wire") -> ArticleDoc:
    return ArticleDoc(
        article_id=article_id,
        title=title,
        text=text,
        language=lang,
        published_at=T0 + timedelta(hours=hours),
        source=source,
        url=f"https://{source.lower().replace(' ', '')}.example/{article_id}",
    )


# --- a port fire in Antwerp, covered in English and French, then a sequel fire a week later ---------

FIRE_EN = doc(
    "fire-en-1",
    "Huge fire at Antwerp port warehouse injures two workers",
    "A fire broke out on Monday in a warehouse storing fertiliser at the port of Antwerp, injuring two "
    "workers and sending a plume of black smoke over the city, the Antwerp Port Authority said. About 80 "
    "firefighters fought the blaze at the Kallo terminal, which was brought under control by early "
    "afternoon. Mayor Pieter Van Damme urged residents of Berendrecht and Zandvliet to keep their windows "
    "closed. Authority spokeswoman Leen Claessens said container traffic at the terminal was suspended.",
    lang="en",
    hours=0,
    source="Global Wire",
)
FIRE_FR = doc(
    "fire-fr-1",
    "Belgique : violent incendie dans un entrepôt du port d'Anvers, deux blessés",
    "Un violent incendie s'est déclaré lundi matin dans un entrepôt d'engrais du port d'Anvers, faisant "
    "deux blessés parmi les ouvriers, selon l'Autorité portuaire d'Anvers. Quelque 80 pompiers ont été "
    "mobilisés au terminal de Kallo. Le bourgmestre Pieter Van Damme a demandé aux habitants de "
    "Berendrecht et de Zandvliet de garder leurs fenêtres fermées en raison de l'épais panache de fumée. "
    "« Le trafic des conteneurs est suspendu au terminal », a indiqué la porte-parole Leen Claessens.",
    lang="fr",
    hours=1.5,
    source="Agence Hexa",
)
FIRE_EN_2 = doc(
    "fire-en-2",
    "Antwerp warehouse blaze: residents told to stay indoors as smoke drifts north",
    "Residents of Berendrecht and Zandvliet were told to stay indoors on Monday as thick smoke from a "
    "fertiliser warehouse fire at the Kallo terminal in the port of Antwerp drifted north. Two workers "
    "were taken to hospital with burns, and 80 firefighters were at the scene, according to Leen "
    "Claessens of the Antwerp Port Authority. Pieter Van Damme, the city's mayor, said air quality "
    "measurements showed no danger so far.",
    lang="en",
    hours=4,
    source="Daily Ledger",
)
FIRE_FR_FOLLOWUP = doc(
    "fire-fr-2",
    "Incendie au port d'Anvers : l'enquête vise un court-circuit, le terminal de Kallo rouvre",
    "Trois jours après l'incendie de l'entrepôt d'engrais du terminal de Kallo, au port d'Anvers, "
    "l'enquête privilégie la piste d'un court-circuit, a annoncé l'Autorité portuaire d'Anvers. Les deux "
    "ouvriers blessés sont sortis de l'hôpital. Le trafic des conteneurs a repris jeudi, a précisé Leen "
    "Claessens, porte-parole de l'Autorité portuaire.",
    lang="fr",
    hours=72,
    source="Le Quotidien",
)
SEQUEL_FIRE = doc(
    "fire2-en-1",
    "New fire at Antwerp port: chemical tanker blaze forces evacuation of Lillo dock",
    "A fire broke out on a chemical tanker moored at the Lillo dock in the port of Antwerp on Tuesday, a "
    "week after a warehouse blaze at the Kallo terminal, forcing the evacuation of 300 dock workers, the "
    "Antwerp Port Authority said. Nobody was hurt. Fire chief Marc Peeters said the crew of the Malta-"
    "flagged Nordic Star had tried to contain the fire before 45 firefighters arrived.",
    lang="en",
    hours=24 * 8,
    source="Global Wire",
)
SEQUEL_FIRE_FR = doc(
    "fire2-fr-1",
    "Anvers : un pétrolier chimique en feu au quai de Lillo, 300 dockers évacués",
    "Un incendie s'est déclaré mardi à bord du Nordic Star, un pétrolier chimique battant pavillon "
    "maltais amarré au quai de Lillo, dans le port d'Anvers. Quelque 300 dockers ont été évacués et 45 "
    "pompiers mobilisés, selon le chef des pompiers Marc Peeters. Aucun blessé n'est à déplorer.",
    lang="fr",
    hours=24 * 8 + 2,
    source="Agence Hexa",
)

# --- two earthquakes of the same kind, days apart, in different countries ------------------------

CHILE_EN = doc(
    "quake-cl-en",
    "Magnitude 6.1 earthquake hits northern Chile, killing four",
    "A magnitude 6.1 earthquake struck the Antofagasta region of northern Chile on Wednesday, killing four "
    "people and damaging 120 homes in the port city of Tocopilla, the national disaster agency Senapred "
    "said. The quake hit at a depth of 40 kilometres. Interior Minister Carolina Toha said there was no "
    "tsunami threat. Copper giant Codelco said operations at its Chuquicamata mine were not affected.",
    lang="en",
    hours=48,
    source="Global Wire",
)
CHILE_FR = doc(
    "quake-cl-fr",
    "Chili : un séisme de magnitude 6,1 fait quatre morts dans le nord",
    "Un séisme de magnitude 6,1 a frappé mercredi la région d'Antofagasta, dans le nord du Chili, faisant "
    "quatre morts et endommageant 120 maisons à Tocopilla, a annoncé l'agence Senapred. La ministre de "
    "l'Intérieur Carolina Toha a écarté tout risque de tsunami. Le géant du cuivre Codelco a indiqué que sa "
    "mine de Chuquicamata n'avait pas été touchée.",
    lang="fr",
    hours=49,
    source="Agence Hexa",
)
INDONESIA_EN = doc(
    "quake-id-en",
    "Magnitude 5.8 earthquake strikes Indonesia's Sulawesi, seven dead",
    "A magnitude 5.8 earthquake struck the island of Sulawesi in eastern Indonesia on Saturday, killing "
    "seven people and damaging 300 houses in the district of Mamuju, the national disaster agency BNPB said. "
    "The quake hit at a depth of 10 kilometres. Agency spokesman Abdul Muhari said there was no tsunami "
    "threat, but residents spent the night outside for fear of aftershocks.",
    lang="en",
    hours=48 + 72,
    source="Global Wire",
)
INDONESIA_FR = doc(
    "quake-id-fr",
    "Indonésie : un séisme de magnitude 5,8 fait sept morts à Sulawesi",
    "Un séisme de magnitude 5,8 a frappé samedi l'île de Sulawesi, dans l'est de l'Indonésie, faisant sept "
    "morts et endommageant 300 maisons dans le district de Mamuju, selon l'agence BNPB. Son porte-parole "
    "Abdul Muhari a écarté tout risque de tsunami.",
    lang="fr",
    hours=48 + 73,
    source="Agence Hexa",
)

# unrelated background traffic, as in any real stream (it also gives IDF something to work with)
BACKGROUND = [
    doc(
        f"bg-{number}",
        title,
        text,
        lang=lang,
        hours=0.5 + number * 7,
        source="Courier",
    )
    for number, (title, text, lang) in enumerate(
        [
            (
                "Central bank holds rates as inflation cools",
                "The central bank kept its main rate at 3 percent on Monday, saying inflation was cooling "
                "faster than expected but wages were still rising quickly. Governor Elena Marsh said markets "
                "should not expect cuts before the autumn.",
                "en",
            ),
            (
                "Tour de France : la 3e étape pour Lenny Martinez",
                "Le grimpeur Lenny Martinez a remporté mardi la troisième étape du Tour de France entre "
                "Amiens et Rouen au terme d'une échappée de 150 kilomètres. Le maillot jaune reste sur les "
                "épaules du Danois Jonas Vingegaard.",
                "fr",
            ),
            (
                "Parliament passes school meals bill",
                "Lawmakers approved free school meals for all primary pupils on Wednesday after a long "
                "campaign by parents' groups. Education Secretary Paul Ridley said the scheme would start in "
                "September and cost 1.2 billion a year.",
                "en",
            ),
            (
                "Grève à la SNCF : trafic perturbé jeudi",
                "Le trafic sera fortement perturbé jeudi sur les lignes TER et Intercités en raison d'un "
                "mouvement social à la SNCF, ont annoncé les syndicats. Seul un train sur deux circulera en "
                "moyenne.",
                "fr",
            ),
        ]
    )
]


def stream() -> list[ArticleDoc]:
    docs = [
        FIRE_EN,
        FIRE_FR,
        FIRE_EN_2,
        FIRE_FR_FOLLOWUP,
        SEQUEL_FIRE,
        SEQUEL_FIRE_FR,
        CHILE_EN,
        CHILE_FR,
        INDONESIA_EN,
        INDONESIA_FR,
        *BACKGROUND,
    ]
    return sorted(docs, key=lambda d: (d.published_at, d.article_id))


def run(clusterer: StoryClusterer, docs: list[ArticleDoc]) -> dict[str, Assignment]:
    return {d.article_id: clusterer.assign(d) for d in docs}


@pytest.fixture(scope="module")
def assigned() -> dict[str, str]:
    clusterer = StoryClusterer()
    assignments = run(clusterer, stream())
    final = {}
    redirect: dict[str, str] = {}
    for assignment in assignments.values():
        for old in assignment.merged:
            redirect[old] = assignment.event_id
    for article_id, assignment in assignments.items():
        event_id = assignment.event_id
        while event_id in redirect:
            event_id = redirect[event_id]
        final[article_id] = event_id
    return final


def test_same_story_from_several_outlets_in_english_and_french_is_one_event(assigned: dict[str, str]) -> None:
    fire = {assigned[d.article_id] for d in (FIRE_EN, FIRE_FR, FIRE_EN_2, FIRE_FR_FOLLOWUP)}
    assert fire == {"evt_fire-en-1"}


def test_two_different_earthquakes_stay_apart(assigned: dict[str, str]) -> None:
    chile = {assigned["quake-cl-en"], assigned["quake-cl-fr"]}
    indonesia = {assigned["quake-id-en"], assigned["quake-id-fr"]}
    assert len(chile) == 1 and len(indonesia) == 1
    assert chile != indonesia


def test_sequel_incident_at_the_same_place_is_a_new_event(assigned: dict[str, str]) -> None:
    assert assigned["fire2-en-1"] == assigned["fire2-fr-1"] == "evt_fire2-en-1"
    assert assigned["fire2-en-1"] != assigned["fire-en-1"]


def test_background_articles_open_their_own_events(assigned: dict[str, str]) -> None:
    assert len({assigned[d.article_id] for d in BACKGROUND}) == len(BACKGROUND)
    story_events = {assigned[d.article_id] for d in stream() if not d.article_id.startswith("bg-")}
    assert story_events.isdisjoint(assigned[d.article_id] for d in BACKGROUND)


def test_restore_then_continue_gives_exactly_the_uninterrupted_assignments() -> None:
    docs = stream()
    cut = len(docs) // 2
    uninterrupted = StoryClusterer()
    first_half = run(uninterrupted, docs[:cut])
    expected = run(uninterrupted, docs[cut:])

    restarted = StoryClusterer()
    # stored (article, event) pairs, restored in a different order than they were assigned
    for d in reversed(docs[:cut]):
        restarted.restore(d, first_half[d.article_id].event_id)
    assert _state(restarted) == _state(_replay(docs[:cut]))
    assert run(restarted, docs[cut:]) == expected
    assert _state(restarted) == _state(uninterrupted)


def _replay(docs: list[ArticleDoc]) -> StoryClusterer:
    clusterer = StoryClusterer()
    run(clusterer, docs)
    return clusterer


def _state(clusterer: StoryClusterer) -> object:
    """Everything that decides future assignments (white-box on purpose: restore must be exact)."""
    events = {
        event_id: (
            dict(event.members),
            dict(event.term_sum),
            dict(event.term_docs),
            dict(event.cue_counts),
            dict(event.entity_counts),
            dict(event.displays),
            dict(event.surfaces),
            event.first,
            event.last,
        )
        for event_id, event in clusterer._events.items()
    }
    owners = clusterer._slots.owners  # postings hold dense event slots: compare the events they stand for
    postings = [
        {key: sorted(owners[slot].event_id for slot in slots) for key, slots in table.items()}
        for table in (clusterer._term_postings, clusterer._cue_postings)
    ]
    frequencies = (clusterer._terms.frequencies(), clusterer._cues.frequencies())
    return events, frequencies, postings, dict(clusterer._article_event)


# --- merges -------------------------------------------------------------------------------------------

# Two early reports of one story that, alone, do not look alike (one has the people, the other the
# organisations), then a fuller report that shows they are the same story.
HALF_A = doc(
    "merge-a",
    "Ferry runs aground off Naxos",
    "The ferry Blue Aegean ran aground off Naxos on Friday night with 412 passengers on board. Captain "
    "Nikos Dimitriou said the ship hit rocks in strong winds near the port of Naxos.",
    lang="en",
    hours=0,
)
HALF_B = doc(
    "merge-b",
    "Grèce : évacuation d'un navire au large des Cyclades",
    "Les garde-côtes grecs ont lancé vendredi soir une opération d'évacuation au large des Cyclades, a "
    "annoncé le ministère grec de la Marine marchande. L'armateur Aegean Lines a affrété deux navires.",
    lang="fr",
    hours=0.5,
)
BRIDGE = doc(
    "merge-c",
    "Blue Aegean ferry aground off Naxos: 412 passengers evacuated by Aegean Lines ships",
    "All 412 passengers of the ferry Blue Aegean, which ran aground off Naxos in the Cyclades on Friday, "
    "were evacuated overnight, the Greek coast guard and the Ministry of Maritime Affairs said. Captain Nikos "
    "Dimitriou said the ship hit rocks near the port of Naxos. Operator Aegean Lines chartered two ships for "
    "the evacuation off the Cyclades.",
    lang="en",
    hours=3,
)


def test_article_linking_two_events_merges_them_into_the_older_one() -> None:
    config = ClusteringConfig(threshold=0.3, merge_threshold=0.3)
    clusterer = StoryClusterer(config)
    first = clusterer.assign(HALF_A)
    second = clusterer.assign(HALF_B)
    assert first.created and second.created and first.event_id != second.event_id
    bridge = clusterer.assign(BRIDGE)
    assert bridge.event_id == "evt_merge-a"  # the older event survives, with its id
    assert bridge.merged == ("evt_merge-b",)
    assert not bridge.created and bridge.score >= config.merge_threshold
    assert clusterer.event_ids() == ["evt_merge-a"]
    assert set(clusterer.profile("evt_merge-a").article_ids) == {"merge-a", "merge-b", "merge-c"}
    with pytest.raises(UnknownEvent):
        clusterer.profile("evt_merge-b")
    # restore from the stored pairs (all now in the survivor) gives the same state
    restored = StoryClusterer(config)
    for d in (BRIDGE, HALF_B, HALF_A):
        restored.restore(d, "evt_merge-a")
    assert _state(restored) == _state(clusterer)


def test_merge_needs_the_merge_threshold() -> None:
    clusterer = StoryClusterer(ClusteringConfig(threshold=0.3, merge_threshold=0.99))
    clusterer.assign(HALF_A)
    clusterer.assign(HALF_B)
    bridge = clusterer.assign(BRIDGE)
    assert bridge.merged == ()
    assert len(clusterer) == 2


# --- other behaviour ------------------------------------------------------------------------------------


def test_stories_beyond_the_horizon_never_join() -> None:
    clusterer = StoryClusterer()
    clusterer.assign(FIRE_EN)
    months_later = replace(FIRE_EN_2, published_at=FIRE_EN.published_at + timedelta(days=90))
    assert clusterer.assign(months_later).created


def test_the_horizon_is_inclusive_on_both_sides_of_an_event() -> None:
    # Candidates beyond the horizon are skipped before the time factor is computed: an article exactly one horizon
    # before the event's first or after its last article still scores (and joins), one microsecond more does not.
    config = ClusteringConfig(horizon=timedelta(days=3), time_grace=timedelta(days=3))
    tick = timedelta(microseconds=1)
    for offset, joins in ((config.horizon, True), (config.horizon + tick, False)):
        for sign in (1, -1):
            clusterer = StoryClusterer(config)
            clusterer.assign(FIRE_EN)
            clusterer.assign(replace(FIRE_FR, published_at=FIRE_EN.published_at + timedelta(hours=6)))
            end = FIRE_EN.published_at + (timedelta(hours=6) if sign > 0 else timedelta(0))
            other = replace(FIRE_EN_2, article_id="fire-en-x", published_at=end + sign * offset)
            assert clusterer.assign(other).created is not joins, (offset, sign)


def test_event_vector_integer_forms_summed_are_those_of_the_float_sums() -> None:
    # An event's integer vector form is kept as the running sum of its articles' forms: the same values and peak
    # as _fixed of the float sum, and the float path where the sum could round.
    rng = np.random.default_rng(3)
    event = _Event("evt")
    for _ in range(50):
        vector = rng.standard_normal(64).astype(np.float16).astype(np.float64)
        event._add_vector(vector, _fixed(vector))
        expected = _fixed(event.vec_sum)  # type: ignore[arg-type]
        assert expected is not None and event.vec_fixed is not None
        assert np.array_equal(event.vec_fixed.values, expected.values) and event.vec_fixed.peak == expected.peak
    # Integer forms 2**53 - 1 and 2: their exact sum 2**53 + 1 is odd, and the float sum rounds it to 2**53. The
    # guard must send this sum to _fixed of the float sum; an integer sum here would be off by one.
    first = np.array([(2**53 - 1) * 2.0**-24, 0.0])
    second = np.array([2 * 2.0**-24, 1 * 2.0**-24])
    assert _fixed_sum(_fixed(first), _fixed(second)) is None  # type: ignore[arg-type]
    event = _Event("big")
    event._add_vector(first, _fixed(first))
    event._add_vector(second, _fixed(second))
    expected = _fixed(event.vec_sum)  # type: ignore[arg-type]
    assert expected is not None and int(expected.values[0]) == 2**53
    assert event.vec_fixed is not None and np.array_equal(event.vec_fixed.values, expected.values)
    assert event.vec_fixed.peak == expected.peak


def test_replayed_article_is_idempotent() -> None:
    clusterer = StoryClusterer()
    first = clusterer.assign(FIRE_EN)
    again = clusterer.assign(FIRE_EN)
    assert again == Assignment(event_id=first.event_id, created=False, merged=(), score=1.0)
    assert clusterer.article_count == 1


def test_restore_into_a_different_event_is_refused() -> None:
    clusterer = StoryClusterer()
    clusterer.restore(FIRE_EN, "evt_a")
    clusterer.restore(FIRE_EN, "evt_a")
    with pytest.raises(ClusteringError):
        clusterer.restore(FIRE_EN, "evt_b")


def test_profile_summarises_the_event() -> None:
    clusterer = StoryClusterer()
    for d in (FIRE_EN, FIRE_FR, FIRE_EN_2):
        clusterer.assign(d)
    profile = clusterer.profile("evt_fire-en-1")
    assert profile.article_ids == ("fire-en-1", "fire-fr-1", "fire-en-2")
    assert profile.representative_article_id in profile.article_ids
    assert "Antwerp" in profile.places
    assert "Pieter Van Damme" in profile.people
    assert any("Port Authority" in name for name in profile.organisations)
    assert set(profile.languages) == {"en", "fr"}
    assert profile.sources == ("Agence Hexa", "Daily Ledger", "Global Wire")
    assert profile.first_published_at == FIRE_EN.published_at
    assert profile.last_published_at == FIRE_EN_2.published_at
    assert any(word in profile.keywords for word in ("fire", "warehouse", "kallo", "antwerp"))


def test_evict_before_drops_events_older_than_the_horizon() -> None:
    config = ClusteringConfig(horizon=timedelta(days=10))
    clusterer = StoryClusterer(config)
    for d in (FIRE_EN, FIRE_FR, SEQUEL_FIRE):
        clusterer.assign(d)
    assert len(clusterer) == 2
    # the first fire's last article is at +1.5 h; eviction at +11 days minus a 10-day horizon drops it
    assert clusterer.evict_before(T0 + timedelta(days=11)) == 1
    assert clusterer.event_ids() == ["evt_fire2-en-1"]
    assert clusterer.event_of("fire-en-1") is None and clusterer.article_count == 1
    assert clusterer.evict_before(T0 + timedelta(days=11)) == 0


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ClusteringError):
        ClusteringConfig(threshold=0.5, merge_threshold=0.4)
    with pytest.raises(ClusteringError):
        ClusteringConfig(horizon=timedelta(0))


# --- the language-neutral cues that let different languages meet -----------------------------------


def test_numbers_and_units_compare_across_languages_and_conventions() -> None:
    english = extract_cues("", "The quake killed 23 people and injured 2,300; magnitude 6.4.", "en")
    french = extract_cues("", "Le séisme de magnitude 6,4 a fait 23 morts et 2.300 blessés.", "fr")
    for key in ("n:23:dead", "n:2300", "n:6.4:magnitude"):
        assert key in english.numbers and key in french.numbers
    assert "n:2300:injured" in french.numbers
    money = extract_cues("", "a deal worth 3,5 milliards d'euros", "fr").numbers
    assert "n:3500000000" in money
    assert not extract_cues("", "since 2019, in February 2023", "en").numbers  # years are not quantities


def test_names_get_one_key_across_languages() -> None:
    french = extract_cues("", "La Banque centrale européenne a relevé ses taux, selon Berlin et l'Allemagne.", "fr")
    english = extract_cues("", "The ECB raised rates, Germany's finance ministry in Berlin said.", "en")
    assert "ecb" in french.organisations and "ecb" in english.organisations
    assert {"germany", "berlin"} <= french.places and {"germany", "berlin"} <= english.places


def test_capitals_that_are_not_names_are_ignored() -> None:
    cues = extract_cues(
        "Magnitude Quake Strikes Malatya",
        "ANKARA, Feb 9 - Residents fled into the streets. Interior Minister Kerem Aydinli said rescuers from "
        "AFAD were in Malatya. Malatya was among the provinces hit in 2023.",
        "en",
    )
    assert "ankara" in cues.places and "ankara" not in cues.organisations  # a dateline, not an acronym
    assert "kerem aydinli" in cues.people
    assert "afad" in cues.organisations and "malatya" in cues.places
    assert "residents" not in cues.others and "magnitude" not in cues.others
    german = extract_cues("", "Die Sparkassen und Volksbanken senken die Zinsen, sagte Matthias Brenner.", "de")
    assert "matthias brenner" in german.people
    assert not any("sparkassen" in key for key in german.others | german.people | german.organisations)


def test_text_without_spaces_still_clusters() -> None:
    first = doc(
        "zh-1",
        "东京电力排放处理水",
        "东京电力公司周一表示，福岛第一核电站的处理水第五轮排放已经开始。",
        lang="zh",
        hours=0,
    )
    second = doc(
        "zh-2", "福岛处理水开始排放", "日本东京电力公司说，福岛第一核电站第五轮处理水排放周一开始。", lang="zh", hours=2
    )
    clusterer = StoryClusterer()
    assert clusterer.assign(first).created
    assert clusterer.assign(second).event_id == "evt_zh-1"


def test_member_keeps_the_strongest_terms_ties_by_term() -> None:
    rng = random.Random(5)
    for size in (0, 1, 39, 40, 41, 300):
        # few distinct weights: ties at the cut are the rule, not the exception
        terms = {f"t{rng.randrange(10**6)}": rng.choice((1000, 1693, 2099, 2386)) for _ in range(size)}
        features = _features(doc("m", "Title", "Body text.", lang="en", hours=0), ClusteringConfig(), None)
        member = _member(replace(features, terms=terms))
        expected = heapq.nsmallest(40, [(-weight, term) for term, weight in terms.items()])
        assert member.top_terms == tuple((term, -weight) for weight, term in expected)


def test_keyed_strongest_ranks_as_strongest_and_the_member_keeps_the_same_terms() -> None:
    # The keyed form ranks by (-value, position in string order): the (-value, term) order, ties included, for the
    # integer weights of members and the float TF-IDF weights of the query terms.
    rng = random.Random(17)
    base = _features(doc("k", "Title", "Body text.", lang="en", hours=0), ClusteringConfig(), None)
    for size in (0, 1, 24, 25, 26, 39, 40, 41, 300):
        words = ["".join(rng.choice("abcdéz") for _ in range(rng.randint(1, 6))) for _ in range(size)]
        terms = {word: rng.choice((1000, 1693, 2099, 2386)) for word in words}
        features = replace(base, terms=terms)
        keyed = _Keyed(features)
        assert _member(features, keyed) == _member(features)
        idf = [rng.choice((1.0, 1.5, 2.75, 3.0)) for _ in terms]
        weighted = [weight * factor for weight, factor in zip(terms.values(), idf, strict=True)]
        for n in (0, 1, 25, 40):
            assert keyed.strongest(np.array(weighted), n) == _strongest(weighted, list(terms), n)


def test_keyed_ids_are_looked_up_again_once_a_key_got_or_lost_an_id() -> None:
    terms, cues = _Vocabulary(), _Vocabulary()
    terms.add(["a", "b"])
    features = replace(
        _features(doc("k", "Title", "Body text.", lang="en", hours=0), ClusteringConfig(), None),
        terms={"a": 1000, "b": 1000, "c": 1000},
        cues=frozenset(),
    )
    keyed = _Keyed(features)
    keyed.look_up(terms, cues)
    assert keyed.term_ids[2] == -1 and keyed.term_frequencies == [1, 1, 0]
    ids = terms.add(keyed.terms, keyed.term_ids)  # the missing key gets its id; the others keep theirs
    assert ids == [terms.ids([key])[0] for key in keyed.terms] and ids[:2] == keyed.term_ids[:2]
    before = terms.generation
    terms.subtract(Counter({"a": 2}))  # "a" leaves the vocabulary: its id may be handed to another key
    assert terms.generation != before
    terms.add(["z"])
    keyed.look_up(terms, cues)
    assert keyed.term_ids[0] == -1 and keyed.term_frequencies == [0, 2, 1]


def test_strongest_keys_are_those_nsmallest_ranks_first() -> None:
    rng = random.Random(9)
    for size in (0, 3, 25, 26, 400):
        keys = [f"k{i}" for i in rng.sample(range(10**6), size)]
        values = [rng.choice((1000, 1693, 2099)) * rng.choice((1.0, 1.5, 2.75)) for _ in keys]
        expected = heapq.nsmallest(25, [(-value, key) for value, key in zip(values, keys, strict=True)])
        assert _strongest(values, keys, 25) == [key for _, key in expected]
        for n in (0, -1):  # nsmallest gives nothing; the bisection would have no n-th pair
            assert _strongest(values, keys, n) == [] == heapq.nsmallest(n, keys)


@pytest.mark.parametrize("evict", [False, True])
def test_event_arrays_kept_across_changes_are_those_built_afresh(evict: bool) -> None:
    # With eviction (a short horizon, evict_before ahead of each article) the dropped events' vocabulary ids are
    # freed and handed to new keys, while the events still live keep the arrays and ids they cached earlier.
    clusterer = StoryClusterer(ClusteringConfig(horizon=timedelta(hours=30)) if evict else None)
    evicted, reused = 0, 0
    for d in stream():
        before = {index: key for key, index in clusterer._terms._ids.items()}
        if evict:
            evicted += clusterer.evict_before(d.published_at)
        clusterer.assign(d)  # scoring builds the candidates' arrays, attaching then changes some of them
        after = clusterer._terms._ids
        reused += sum(before.get(index, key) != key for key, index in after.items())
        for event in clusterer._events.values():
            arrays = event.arrays(clusterer._terms, clusterer._cues)
            terms, cues = sorted(event.term_sum), sorted(event.cue_counts)
            assert np.array_equal(arrays.term_ids, clusterer._terms.ids(terms))
            assert arrays.term_sums.tolist() == [float(event.term_sum[t]) for t in terms]
            assert np.array_equal(arrays.cue_ids, clusterer._cues.ids(cues))
            assert arrays.cue_counts.tolist() == [float(event.cue_counts[k]) for k in cues]
    assert (evicted > 0 and reused > 0) == evict
