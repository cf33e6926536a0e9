"""Feed lists in OPML, TOML and YAML, and the errors an operator sees when one is wrong."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ingest.feedlist import FeedListError, FeedSpec, load_feed_list
from newswire.errors import NewswireError

DATA = Path(__file__).parent / "data"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> FeedListError:
    with pytest.raises(FeedListError) as info:
        load_feed_list(path)
    assert isinstance(info.value, NewswireError)
    return info.value


# -- the three formats -----------------------------------------------------------------------------------


def test_opml_nested_outlines() -> None:
    specs = load_feed_list(DATA / "feeds.opml")
    assert specs == [
        FeedSpec(
            url="https://www.quotidien-soir.fr/international/rss.xml",
            name="Le Quotidien du Soir - International",  # title wins over text
            language="fr",
            tags=("World", "Europe", "France", "syria"),  # folder, then category paths
        ),
        FeedSpec(url="https://wire.example.com/top.rss", name="Agency Wire", tags=("World", "Wires")),
        FeedSpec(url="https://science.example.net/rss", name="Science Wire"),
    ]


def test_opml_1_with_xml_extension_and_odd_attribute_case(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "export.xml",
        """<?xml version="1.0"?>
<opml version="1.0"><head><title>Export</title></head><body>
<outline text="Tech" xmlurl="https://tech.example.org/feed/" type="rss"/>
<outline text="No feed here" htmlUrl="https://example.org/"/>
</body></opml>""",
    )
    assert load_feed_list(path) == [FeedSpec(url="https://tech.example.org/feed/", name="Tech")]


def test_toml() -> None:
    assert load_feed_list(DATA / "feeds.toml") == [
        FeedSpec(
            url="https://www.quotidien-soir.fr/international/rss.xml",
            name="Le Quotidien du Soir - International",
            language="fr",
            tags=("world", "france"),
            poll_interval_minutes=15,
        ),
        FeedSpec(
            url="https://www.harbourgazette.co.uk/business/atom.xml",
            name="Harbour Gazette Business",
            ignore_robots=True,
        ),
    ]


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_yaml(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path, f"feeds{suffix}", (DATA / "feeds.yaml").read_text(encoding="utf-8"))
    assert load_feed_list(path) == [
        FeedSpec(
            url="https://www.quotidien-soir.fr/international/rss.xml",
            name="Le Quotidien du Soir - International",
            language="fr",
            tags=("world", "france"),
            poll_interval_minutes=15,
        ),
        FeedSpec(url="https://science.example.net/rss", name="Science Wire"),
        FeedSpec(url="https://wire.example.com/top.rss", name="wire.example.com"),  # bare URL shorthand
    ]


# -- validation errors -----------------------------------------------------------------------------------


def test_duplicate_url_names_both_entries(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds.toml",
        """
[[feeds]]
url = "https://example.com/rss"
name = "First"

[[feeds]]
url = "https://example.com/other"
name = "Other"

[[feeds]]
url = "HTTPS://EXAMPLE.COM:443/rss?utm_source=x"
name = "Again"
""",
    )
    error = error_of(path)
    assert error.reason == "duplicate_url"
    message = str(error)
    assert str(path) in message
    assert "feed #3 ('Again')" in message and "feed #1 ('First')" in message


def test_duplicate_in_opml_names_outlines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "subs.opml",
        """<opml version="2.0"><body>
<outline text="A" xmlUrl="https://example.com/rss"/>
<outline text="B" xmlUrl="https://example.com/rss"/>
</body></opml>""",
    )
    error = error_of(path)
    assert error.reason == "duplicate_url"
    assert "outline 'B' (line 3)" in str(error) and "outline 'A' (line 2)" in str(error)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ('url = "ftp://example.com/feed"', "invalid url"),
        ('url = "/relative/feed.xml"', "invalid url"),
        ('name = "No URL"', "missing url"),
        ('url = "https://example.com/rss"\npoll_interval_minutes = 0', "poll_interval_minutes"),
        ('url = "https://example.com/rss"\npoll_interval_minutes = -5', "poll_interval_minutes"),
        ('url = "https://example.com/rss"\npoll_interval_minutes = "15"', "poll_interval_minutes"),
        ('url = "https://example.com/rss"\npoll_interval_minutes = true', "poll_interval_minutes"),
        ('url = "https://example.com/rss"\nignore_robots = "yes"', "ignore_robots"),
        ('url = "https://example.com/rss"\ntags = [1, 2]', "tags"),
        ('url = "https://example.com/rss"\nlanguage = "French language"', "language"),
        ('url = "https://example.com/rss"\npoll_interval = 5', "unknown key(s) poll_interval"),
    ],
)
def test_invalid_entries_are_named(tmp_path: Path, entry: str, fragment: str) -> None:
    path = write(tmp_path, "feeds.toml", f'[[feeds]]\nurl = "https://ok.example.com/rss"\n\n[[feeds]]\n{entry}\n')
    error = error_of(path)
    assert error.reason == "invalid_entry"
    assert str(path) in str(error)
    assert "feed #2" in str(error)
    assert fragment in str(error)


def test_yaml_invalid_interval_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path, "feeds.yaml", "feeds:\n  - url: https://a.example/rss\n    name: A\n    poll_interval_minutes: 0\n"
    )
    error = error_of(path)
    assert error.reason == "invalid_entry"
    assert "feed #1 ('A')" in str(error)


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("feeds.toml", "[[feeds]\nurl = ", "syntax"),
        ("feeds.toml", '[settings]\nx = 1\n[[feeds]]\nurl = "https://a.example/rss"\n', "syntax"),
        ("feeds.yaml", "feeds: [unclosed", "syntax"),
        ("feeds.yaml", "- https://a.example/rss\n", "syntax"),  # top level must be a mapping
        ("feeds.yaml", "feeds: https://a.example/rss\n", "syntax"),
        ("feeds.yaml", "feeds:\n  - [1, 2]\n", "invalid_entry"),
        ("feeds.opml", "<opml><body><outline xmlUrl='https://a.example/rss'></body></opml>", "syntax"),
        ("feeds.opml", "<rss version='2.0'/>", "syntax"),
        ("feeds.opml", "<opml version='2.0'><head/></opml>", "syntax"),
        ("feeds.toml", "# nothing yet\n", "empty"),
        ("feeds.yaml", "", "empty"),
        ("feeds.opml", "<opml version='2.0'><body><outline text='Folder'/></body></opml>", "empty"),
        ("feeds.json", "{}", "unsupported_format"),
    ],
)
def test_file_level_errors(tmp_path: Path, name: str, text: str, reason: str) -> None:
    path = write(tmp_path, name, text)
    error = error_of(path)
    assert error.reason == reason
    assert str(path) in str(error)


def test_missing_file(tmp_path: Path) -> None:
    error = error_of(tmp_path / "nope.toml")
    assert error.reason == "not_found"
    assert "nope.toml" in str(error)


# -- hostile OPML ----------------------------------------------------------------------------------------


def test_opml_billion_laughs_refused_quickly(tmp_path: Path) -> None:
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    path = write(
        tmp_path,
        "feeds.opml",
        f'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY l0 "lol">{entities}]>'
        '<opml version="2.0"><body><outline text="&l9;" xmlUrl="https://a.example/rss"/></body></opml>',
    )
    started = time.perf_counter()
    assert error_of(path).reason == "entity_declaration"
    assert time.perf_counter() - started < 0.5


def test_opml_external_entity_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds.opml",
        '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        '<opml version="2.0"><body><outline text="&xxe;" xmlUrl="https://a.example/rss"/></body></opml>',
    )
    assert error_of(path).reason == "entity_declaration"


def test_opml_undeclared_entity_is_a_syntax_error_not_a_lookup(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds.opml",
        '<opml version="2.0"><body><outline text="&xxe;" xmlUrl="https://a.example/rss"/></body></opml>',
    )
    assert error_of(path).reason == "syntax"
