"""Near-duplicate detection: syndicated copies are found, independent reports of one story are not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from transform.documents import ArticleDoc, InvalidArticleDoc
from transform.neardup import NearDuplicate, NearDuplicateError, NearDuplicateIndex

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

WIRE = (
    "LISBON, March 2 - Portugal's parliament on Monday approved a bill that caps rent increases at 2 percent "
    "a year for the next three years, after a heated debate that split the governing coalition.\n\n"
    "The measure passed by 118 votes to 104, with the centrist Liberal Alliance abstaining. Housing minister "
    "Rita Saramago said the cap would protect about 900,000 tenant households from what she called "
    "speculative increases in Lisbon and Porto.\n\n"
    '"Families cannot keep paying for a market that has stopped working for them," Saramago told '
    "lawmakers before the vote. Landlord associations said the cap would push owners to sell or switch to "
    "short-term tourist rentals, worsening the shortage.\n\n"
    "Rents in Lisbon rose 14 percent last year according to the National Statistics Institute, the fastest "
    "increase in western Europe. The bill now goes to President Miguel Antunes, who has 20 days to sign it "
    "or send it to the Constitutional Court."
)

INDEPENDENT = (
    "Tenants' groups celebrated outside the Assembly of the Republic on Monday evening as Portuguese "
    "lawmakers voted through a three-year limit on rent rises, a flagship promise of Housing Minister Rita "
    "Saramago.\n\n"
    "Under the law, landlords will not be able to raise rents by more than 2 percent a year. The vote was "
    "118 in favour and 104 against. Opponents warned that investors would flee the rental market.\n\n"
    '"This is the first time in a decade that renters have won something," said Ana Figueira, who leads a '
    "tenants' association in Porto. Property owners' federation chief Joao Matos called the law "
    '"confiscation by another name" and urged the president to veto it.\n\n'
    "Average rents in the capital climbed 14 percent in 2025. President Miguel Antunes must now decide "
    "within 20 days whether to promulgate the text."
)

UNRELATED = (
    "Lisbon's metro will close its green line for six weeks from July for the replacement of tracks and "
    "signalling installed in the 1990s, the operator said on Monday.\n\nReplacement buses will run every "
    "five minutes at peak hours between Cais do Sodre and Telheiras, and the operator promised that the "
    "works, budgeted at 38 million euros, would cut breakdowns by half."
)


def doc(article_id: str, text: str, *, source: str = "Wire", hours: float = 0.0) -> ArticleDoc:
    return ArticleDoc(
        article_id=article_id,
        title="Portugal caps rent increases",
        text=text,
        language="en",
        published_at=T0 + timedelta(hours=hours),
        source=source,
        url=f"https://{source.lower()}.example/{article_id}",
    )


@pytest.fixture
def index() -> NearDuplicateIndex:
    idx = NearDuplicateIndex()
    idx.add(doc("orig", WIRE))
    idx.add(doc("other-story", UNRELATED, hours=1))
    return idx


def test_verbatim_copy_is_a_duplicate_with_score_one(index: NearDuplicateIndex) -> None:
    found = index.find(doc("copy", WIRE, source="Daily", hours=2))
    assert found == NearDuplicate(duplicate_of="orig", score=1.0, method="minhash")


def test_copy_with_outlet_boilerplate_around_it_is_a_duplicate(index: NearDuplicateIndex) -> None:
    text = (
        "(Global Wire) - "
        + WIRE
        + "\n\nFollow The Daily Ledger on Facebook, X and Instagram for the latest news. Sign up for our "
        "morning newsletter to get the day's top stories in your inbox. Copyright 2026 The Daily Ledger."
    )
    found = index.find(doc("copy", text, source="Daily", hours=3))
    assert found is not None and found.duplicate_of == "orig"
    assert found.score >= 0.8  # containment: the wire text is wholly inside the copy


def test_lightly_edited_copy_is_a_duplicate(index: NearDuplicateIndex) -> None:
    paragraphs = WIRE.split("\n\n")
    paragraphs[0] = paragraphs[0].replace("after a heated debate that split", "following a debate that divided")
    paragraphs[2] = "Landlords' groups warned that the cap would push owners towards tourist rentals."
    edited = "\n\n".join(paragraphs[:3])  # last paragraph trimmed, one sentence rewritten
    found = index.find(doc("edited", edited, source="Regional", hours=5))
    assert found is not None and found.duplicate_of == "orig"
    assert index.threshold <= found.score < 1.0


def test_independent_article_on_the_same_story_is_not_a_duplicate(index: NearDuplicateIndex) -> None:
    independent = doc("indep", INDEPENDENT, source="Tribune", hours=4)
    assert index.find(independent) is None
    assert index.score(independent, doc("orig", WIRE)) < 0.15


def test_copy_outside_the_horizon_is_a_republication_not_a_duplicate() -> None:
    idx = NearDuplicateIndex(horizon=timedelta(days=30))
    idx.add(doc("orig", WIRE))
    assert idx.find(doc("later", WIRE, hours=24 * 45)) is None
    assert idx.find(doc("soon", WIRE, hours=24 * 29)) is not None


def test_tie_between_copies_points_at_the_earliest_article() -> None:
    idx = NearDuplicateIndex()
    idx.add(doc("second", WIRE, hours=1))
    idx.add(doc("first", WIRE, hours=0))
    found = idx.find(doc("third", WIRE, hours=2))
    assert found is not None and found.duplicate_of == "first"


def test_texts_too_short_to_judge_are_never_duplicates() -> None:
    idx = NearDuplicateIndex()
    idx.add(doc("a", "Subscribe to read the full story."))
    assert idx.find(doc("b", "Subscribe to read the full story.", hours=1)) is None


def test_shared_outlet_footer_does_not_make_different_articles_duplicates() -> None:
    footer = (
        "\n\nThis article is reserved for subscribers of The Morning Courier. Subscribe now for unlimited access "
        "to all our articles, our daily newsletters, the digital edition and the archives since 1945, from "
        "just one euro for the first month, cancel at any time from your account page."
    )
    idx = NearDuplicateIndex()
    stories = [WIRE.split("\n\n")[0], INDEPENDENT.split("\n\n")[2], "Lisbon metro workers strike on Friday."]
    for number, lede in enumerate(stories):
        idx.add(doc(f"courier-{number}", lede + footer, source="Courier", hours=number))
    unrelated = "Porto city council approves a new tram line to the airport, to open in 2029." + footer
    assert idx.find(doc("courier-new", unrelated, source="Courier", hours=5)) is None


def test_evict_before_bounds_memory_and_forgets_old_articles(index: NearDuplicateIndex) -> None:
    assert len(index) == 2
    assert index.evict_before(T0 + timedelta(minutes=30)) == 1
    assert len(index) == 1 and "orig" not in index
    assert index.find(doc("copy", WIRE, hours=2)) is None
    assert index.evict_before(T0 + timedelta(days=1)) == 1
    assert len(index) == 0


def test_adding_the_same_article_twice_is_a_no_op(index: NearDuplicateIndex) -> None:
    index.add(doc("orig", WIRE))
    assert len(index) == 2
    assert index.find(doc("orig", WIRE)) is None  # an article is not its own duplicate


def test_non_latin_scripts_are_shingled_by_characters() -> None:
    text = (
        "东京电力公司周一表示，福岛第一核电站的处理水第五轮排放已经开始，预计持续十七天。"
        "日本政府称排放符合国际原子能机构的安全标准，但渔业团体仍然表示担忧。"
    )
    idx = NearDuplicateIndex()
    idx.add(doc("zh", text))
    found = idx.find(doc("zh-copy", "（新华社）" + text, source="Other", hours=1))
    assert found is not None and found.duplicate_of == "zh"


def test_invalid_configuration_and_naive_dates_are_rejected() -> None:
    with pytest.raises(NearDuplicateError):
        NearDuplicateIndex(threshold=0)
    with pytest.raises(NearDuplicateError):
        NearDuplicateIndex(num_perm=64)
    with pytest.raises(InvalidArticleDoc):
        ArticleDoc("x", "t", "b", "en", datetime(2026, 1, 1), "s", "u")
