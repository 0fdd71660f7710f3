"""PostgresStore behaviour beyond the shared contract, against a real server."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest
from tests import _services

from durable.errors import (
    ConfigurationError,
    LeaseLostError,
    RunIdError,
    SerializationError,
    StoreError,
    StoreUnavailableError,
)
from durable.stores.base import LeaseState, NewRun, QueueLimits, SavedStep, StepRecord

if TYPE_CHECKING:
    from durable.stores.postgres import PostgresStore

pytestmark = pytest.mark.postgres


def _asyncpg() -> Any:
    return _services.import_driver("asyncpg")


def _postgres() -> Any:
    """The store module, or a skip (a failure under DURABLE_REQUIRE_SERVICES=1)."""
    return _services.import_driver("durable.stores.postgres")


def _sql() -> Any:
    """The store's SQL module."""
    return _services.import_driver("durable.stores._postgres_sql")


# claim_run as every schema version defines it (version 9 added an 11th
# argument with a default): the statement for schemas made by older versions.
_CLAIM_ANY_VERSION = "SELECT * FROM {s}.claim_run($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"


def _step(step_id: str, position: int = 0, result: str = '"ok"') -> StepRecord:
    return StepRecord(
        step_id, position, step_id.split("#")[0], "completed", result, None, 1, 1.0, 2.0
    )


@pytest.fixture
async def dsn() -> str:
    """The test server's DSN."""
    return await _services.postgres_dsn()


@pytest.fixture
async def admin(dsn: str) -> AsyncIterator[Any]:
    """A plain connection for inspecting and sabotaging the database."""
    conn = await _asyncpg().connect(dsn, timeout=5)
    yield conn
    await conn.close()


@pytest.fixture
async def schema(dsn: str) -> AsyncIterator[str]:
    """A fresh schema name, dropped after the test."""
    name = _services.unique_name("pg")
    yield name
    await _services.drop_postgres_schema(dsn, name)


@pytest.fixture
async def make_store(dsn: str, schema: str) -> AsyncIterator[Callable[..., PostgresStore]]:
    """A factory of opened-on-demand stores on the test schema, all closed after the test."""
    stores: list[PostgresStore] = []

    def make(**options: Any) -> PostgresStore:
        options.setdefault("schema", schema)
        store: PostgresStore = _postgres().PostgresStore(dsn, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


async def test_schemas_isolate_stores(make_store: Callable[..., PostgresStore], dsn: str) -> None:
    """Two stores on different schemas of one database never see each other's runs."""
    other = _services.unique_name("pg")
    try:
        first, second = make_store(), make_store(schema=other)
        await first.open()
        await second.open()
        claim = await first.claim_run(NewRun("app", "r", "wf", "1"), owner="a", lease_ttl=30)
        assert claim.acquired
        assert await second.get_run("app", "r") is None
        assert await second.list_runs("app") == []
        other_claim = await second.claim_run(NewRun("app", "r", "wf", "2"), owner="b", lease_ttl=30)
        assert other_claim.acquired
        assert other_claim.run.inputs == "2"
        loaded = await first.get_run("app", "r")
        assert loaded is not None
        assert loaded.inputs == "1"
    finally:
        await _services.drop_postgres_schema(dsn, other)


@pytest.mark.parametrize("name", ["", "1abc", 'x"; DROP TABLE y; --', "a-b", "a" * 64, "é"])
def test_invalid_schema_names_are_rejected(name: str) -> None:
    """A schema name that is not a plain identifier raises ConfigurationError before any SQL."""
    with pytest.raises(ConfigurationError):
        _postgres().PostgresStore("postgresql://localhost/db", schema=name)


async def test_concurrent_opens_migrate_once(
    make_store: Callable[..., PostgresStore], admin: Any, schema: str
) -> None:
    """Stores opened at the same moment on a new schema all succeed and leave one version row."""
    latest = len(_sql().MIGRATIONS)
    stores = [make_store(min_size=1, max_size=2) for _ in range(8)]
    await asyncio.gather(*(store.open() for store in stores))
    rows = await admin.fetch(f'SELECT version FROM "{schema}".schema_version')
    assert [row["version"] for row in rows] == [latest]
    again = make_store()
    await again.open()
    await again.open()
    rows = await admin.fetch(f'SELECT version FROM "{schema}".schema_version')
    assert [row["version"] for row in rows] == [latest]
    claim = await again.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    assert claim.acquired


async def test_newer_schema_version_is_refused(
    make_store: Callable[..., PostgresStore], admin: Any, schema: str
) -> None:
    """A schema migrated by a newer library version makes open() fail instead of misbehaving."""
    await make_store().open()
    await admin.execute(f'UPDATE "{schema}".schema_version SET version = 99')
    with pytest.raises(StoreError, match="newer"):
        await make_store().open()


async def _check_constraints(admin: Any, schema: str) -> list[str]:
    rows = await admin.fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'",
        f'"{schema}".steps',
    )
    return sorted(row["conname"] for row in rows)


async def _schema_at_version(admin: Any, schema: str, version: int) -> str:
    """Create ``schema`` as the first ``version`` migrations leave it; its quoted name."""
    sql = _sql()
    quoted = f'"{schema}"'
    async with admin.transaction():
        await admin.execute(f"CREATE SCHEMA {quoted}")
        await admin.execute(sql.render(sql.VERSION_TABLE, quoted))
        for migration in sql.MIGRATIONS[:version]:
            await admin.execute(sql.render(migration, quoted))
        await admin.execute(f"INSERT INTO {quoted}.schema_version (version) VALUES ($1)", version)
    return quoted


async def test_a_version_1_schema_is_upgraded_in_place(
    make_store: Callable[..., PostgresStore], admin: Any, schema: str
) -> None:
    """A schema as version 1 left it keeps its runs and steps; open() brings it up to date."""
    sql = _sql()
    quoted = await _schema_at_version(admin, schema, 1)
    claim_args = ("app", "r", "wf", "{}", None, "old", 30.0, None, False, uuid.uuid4())
    first = await admin.fetchrow(sql.render(_CLAIM_ANY_VERSION, quoted), *claim_args)
    await admin.execute(
        f"INSERT INTO {quoted}.steps VALUES ('app', 'r', 't', 0, 't', 'completed', '1', NULL,"
        " 1, 1.0, 2.0)"
    )
    assert await _check_constraints(admin, schema) == ["steps_status_check"]

    store = make_store()
    await store.open()
    assert await admin.fetchval(f"SELECT version FROM {quoted}.schema_version") == len(
        sql.MIGRATIONS
    )
    assert await _check_constraints(admin, schema) == []
    claim = await store.claim_run(
        NewRun("app", "r", "wf", "{}"), owner="new", lease_ttl=30, steal_from="old"
    )
    assert claim.acquired
    assert claim.run.token == first["token"] + 1
    assert claim.steps == (StepRecord("t", 0, "t", "completed", "1", None, 1, 1.0, 2.0),)
    saved = await store.save_step("app", "r", claim.run.token, _step("u", 1))
    assert saved == SavedStep(_step("u", 1), False)
    # The status the dropped CHECK constraint refused is refused before any SQL.
    bogus = StepRecord("v", 2, "t", "bogus", "1", None, 1, 1.0, 2.0)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="bogus"):
        await store.save_step("app", "r", claim.run.token, bogus)
    loaded = await store.load_run("app", "r")
    assert loaded is not None
    assert [step.step_id for step in loaded[1]] == ["t", "u"]
    # A second open finds nothing left to do.
    await make_store().open()
    assert await admin.fetchval(f"SELECT version FROM {quoted}.schema_version") == len(
        sql.MIGRATIONS
    )


async def test_a_version_2_schema_is_upgraded_in_place(
    make_store: Callable[..., PostgresStore], admin: Any, schema: str
) -> None:
    """A schema as version 2 left it keeps its runs; open() rebuilds the listing index."""
    sql = _sql()
    quoted = await _schema_at_version(admin, schema, 2)
    for run_id in ("a", "b"):
        args = ("app", run_id, "wf", "{}", None, "old", 30.0, None, False, uuid.uuid4())
        await admin.fetchrow(sql.render(_CLAIM_ANY_VERSION, quoted), *args)

    def index(name: str) -> Any:
        return admin.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = $2",
            schema,
            name,
        )

    assert "COLLATE" not in await index("runs_newest")
    store = make_store()
    await store.open()
    assert await admin.fetchval(f"SELECT version FROM {quoted}.schema_version") == len(
        sql.MIGRATIONS
    )
    # Version 6 replaced runs_newest by runs_listed, in the "C" collation too.
    assert await index("runs_newest") is None
    assert 'COLLATE "C"' in await index("runs_listed")
    assert [run.run_id for run in await store.list_runs("app")] == ["b", "a"]
    claim = await store.claim_run(
        NewRun("app", "a", "wf", "{}"), owner="new", lease_ttl=30, steal_from="old"
    )
    assert claim.acquired
    assert await store.save_step("app", "a", claim.run.token, _step("t")) == SavedStep(
        _step("t"), False
    )
    await make_store().open()


async def test_a_version_4_schema_is_upgraded_in_place(
    make_store: Callable[..., PostgresStore], admin: Any, schema: str
) -> None:
    """A version 4 schema keeps its runs, which get no queue; queued runs work after open()."""
    sql = _sql()
    quoted = await _schema_at_version(admin, schema, 4)
    args = ("app", "old", "wf", "{}", None, "w", 30.0, None, False, uuid.uuid4())
    await admin.fetchrow(sql.render(_CLAIM_ANY_VERSION, quoted), *args)
    store = make_store()
    await store.open()
    assert await admin.fetchval(f"SELECT version FROM {quoted}.schema_version") == len(
        sql.MIGRATIONS
    )
    old = await store.get_run("app", "old")
    assert old is not None
    assert (old.status, old.queue, old.priority, old.not_before, old.started_at) == (
        "running",
        None,
        0,
        None,
        None,
    )
    run, created = await store.enqueue_run(NewRun("app", "new", "wf", "{}", None, "q", 1))
    assert created
    assert run.status == "queued"
    claims = await store.claim_queued(
        "app", [QueueLimits("q", concurrency=1)], owner="w", lease_ttl=30, limit=5
    )
    assert [c.run.run_id for c in claims] == ["new"]
    with pytest.raises(_asyncpg().CheckViolationError):
        await admin.execute(f"UPDATE {quoted}.runs SET status = 'bogus' WHERE run_id = 'old'")
    indexes = await admin.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema)
    assert {"runs_queued", "runs_queue_running", "runs_queue_started"} <= {
        row["indexname"] for row in indexes
    }


async def test_a_retried_enqueue_or_claim_queued_answers_as_its_first_attempt(
    make_store: Callable[..., PostgresStore],
) -> None:
    """Sent again with its nonce after committing, an enqueue still creates, a claim its runs."""
    store = make_store()
    await store.open()
    sql = _sql()
    enqueue = ("app", "r0", "wf", "{}", None, "q", 0, None, uuid.uuid4(), "channel", None)
    first = await store._fetchrow(sql.ENQUEUE, *enqueue)
    again = await store._fetchrow(sql.ENQUEUE, *enqueue)
    assert first["created"]
    assert again["created"]
    assert not (await store.enqueue_run(NewRun("app", "r0", "wf", "{}", None, "q")))[1]
    for n in range(1, 5):
        await store.enqueue_run(NewRun("app", f"r{n}", "wf", "{}", None, "q"))
    claim = ("app", ["q"], [None], [None], [None], "w", 30.0, 2, uuid.uuid4())
    taken = await store._fetch(sql.CLAIM_QUEUED, *claim, False)
    retried = await store._fetch(sql.CLAIM_QUEUED, *claim, True)
    assert [row["run_id"] for row in taken] == [row["run_id"] for row in retried] == ["r0", "r1"]
    assert [row["token"] for row in retried] == [1, 1]
    assert retried[0]["lease_expires_at"] >= taken[0]["lease_expires_at"]
    # A retry whose first attempt never committed claims afresh.
    fresh = await store._fetch(sql.CLAIM_QUEUED, *claim[:-1], uuid.uuid4(), True)
    assert [row["run_id"] for row in fresh] == ["r2", "r3"]


async def test_claim_queued_sent_again_after_its_commit_loses_no_run(
    make_store: Callable[..., PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the answer of a committed claim is lost, the store's retry returns its runs."""
    store = make_store()
    for n in range(4):
        await store.enqueue_run(NewRun("app", f"r{n}", "wf", "{}", None, "q"))
    call = store._call

    async def answer_lost(op: Any, **options: Any) -> Any:
        await call(op, **options)  # committed, but the connection dropped
        return await call(op, **options)

    monkeypatch.setattr(store, "_call", answer_lost)
    claims = await store.claim_queued("app", [QueueLimits("q")], owner="w", lease_ttl=30, limit=2)
    monkeypatch.undo()
    assert [(c.run.run_id, c.run.token, c.run.attempts) for c in claims] == [
        ("r0", 1, 1),
        ("r1", 1, 1),
    ]
    queued = await store.list_runs("app", status="queued")
    assert sorted(run.run_id for run in queued) == ["r2", "r3"]


async def test_claimers_on_many_connections_keep_the_caps(
    make_store: Callable[..., PostgresStore], admin: Any, schema: str
) -> None:
    """Stores racing on their own connections start each run once, within both caps."""
    stores = [make_store(min_size=1, max_size=1) for _ in range(8)]
    await asyncio.gather(*(store.open() for store in stores))
    total = 40
    for n in range(total):
        await stores[0].enqueue_run(NewRun("app", f"c{n:02}", "wf", "{}", None, "capped"))
        await stores[0].enqueue_run(NewRun("app", f"r{n:02}", "wf", "{}", None, "rated"))
    queues = [QueueLimits("capped", concurrency=5), QueueLimits("rated", rate_limit=(4, 0.3))]
    done = 0
    while done < 2 * total:
        rounds = await asyncio.gather(
            *(
                s.claim_queued("app", queues, owner=f"w{i}", lease_ttl=30, limit=3)
                for i, s in enumerate(stores)
            )
        )
        running = await admin.fetchval(
            f"""SELECT count(*) FROM "{schema}".runs WHERE queue = 'capped'"""
            " AND status = 'running'"
        )
        assert running <= 5
        for claim in (c for got in rounds for c in got):
            await stores[0].finish_run("app", claim.run.run_id, claim.run.token, "completed")
            done += 1
    rows = await admin.fetch(f'SELECT queue, attempts, started_at FROM "{schema}".runs')
    assert all(row["attempts"] == 1 for row in rows)
    starts = sorted(row["started_at"] for row in rows if row["queue"] == "rated")
    # No four starts of the rated queue within one 0.3 s window.
    assert all(
        later - first >= 0.3 - 1e-6 for first, later in zip(starts, starts[4:], strict=False)
    )


async def _nested_plans(conn: Any, call: Callable[[], Awaitable[Any]]) -> list[str]:
    """The plans of the statements run inside ``call``'s function, by auto_explain."""
    plans: list[str] = []

    def listen(_: Any, message: Any) -> None:
        plans.append(message.message)

    conn.add_log_listener(listen)
    try:
        await call()
        await asyncio.sleep(0.05)
    finally:
        conn.remove_log_listener(listen)
    return plans


async def test_claim_queued_reads_indexes_whatever_the_statistics(
    make_store: Callable[..., PostgresStore], admin: Any, schema: str
) -> None:
    """Every statement of a claim, in its generic plan, reads the queue's index entries only.

    Like the lookups by key, the function's cached plans must never scan all
    the runs (or steps) of an app, from new tables to grown ones.
    """
    store = make_store()
    await store.open()
    conn = await store._connect()
    try:
        await conn.execute("LOAD 'auto_explain'")
    except _asyncpg().InsufficientPrivilegeError:
        await conn.close()
        pytest.skip("auto_explain cannot be loaded by this user")
    settings = "log_min_duration = 0, log_nested_statements = on, log_level = notice"
    for setting in settings.split(", "):
        await conn.execute(f"SET auto_explain.{setting}")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    sql = store._q(_sql().CLAIM_QUEUED)
    queues = (["q", "other"], ["2", None], [None, "100"], [None, "60.0"])

    async def check(when: str, retry: bool) -> None:
        plans = await _nested_plans(
            conn,
            lambda: conn.fetch(sql, "app", *queues, "w", 30.0, 3, uuid.uuid4(), retry),
        )
        text = "\n".join(plans)
        expected = ["runs_queued", "runs_queue_running", "runs_queue_started", "steps_pkey"]
        for index in expected:
            assert index in text, f"{when}: {index} unused:\n{text}"
        assert "Seq Scan" not in text, f"{when}:\n{text}"
        # No index is read by app alone: every condition names a queue or a run.
        assert not re.search(r"Index Cond: \(app = \$\d+\)$", text, re.M), f"{when}:\n{text}"

    try:
        tables = f'"{schema}".runs, "{schema}".steps'
        for n in range(20):
            await store.enqueue_run(NewRun("app", f"q{n}", "wf", "{}", None, ["q", "other"][n % 2]))
        await check("new tables", retry=False)
        await admin.execute(f"ANALYZE {tables}")
        await check("analyzed while nearly empty", retry=True)
        await check("analyzed while nearly empty", retry=False)
        # A long history: finished runs of the queue, and runs without one.
        await admin.execute(
            f"""INSERT INTO "{schema}".runs (app, run_id, workflow, status, inputs, token,
                    attempts, cancel_requested, created_at, updated_at, queue, started_at)
                SELECT 'app', 'h' || i, 'wf', 'completed', '1', 1, 1, false, i, i,
                       CASE WHEN i % 2 = 0 THEN 'q' END, i
                FROM generate_series(1, 5000) AS i"""
        )
        await check("5000 runs, statistics of the small tables", retry=False)
        await admin.execute(f"ANALYZE {tables}")
        await check("5000 runs, analyzed", retry=True)
    finally:
        await conn.close()


async def test_a_step_saved_twice_keeps_the_first(
    make_store: Callable[..., PostgresStore], admin: Any, schema: str
) -> None:
    """A save of an existing step returns the stored one; the connection stays usable."""
    store = make_store(min_size=1, max_size=1)
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    token = claim.run.token
    first = await store.save_step("app", "r", token, _step("t", result='"first"'))
    again = await store.save_step("app", "r", token, _step("t", result='"second"'))
    assert first == again == SavedStep(_step("t", result='"first"'), False)
    await admin.execute(f'UPDATE "{schema}".runs SET cancel_requested = true')
    third = await store.save_step("app", "r", token, _step("t", result='"third"'))
    assert third == SavedStep(_step("t", result='"first"'), True)
    with pytest.raises(LeaseLostError):
        await store.save_step("app", "r", token + 1, _step("t", result='"fourth"'))
    assert await store.save_step("app", "r", token, _step("u", 1)) == SavedStep(_step("u", 1), True)


async def test_lease_times_come_from_the_database_clock(
    make_store: Callable[..., PostgresStore], admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lease expiry follows the server clock even when the local clock is an hour off."""
    store = make_store()
    await store.open()
    monkeypatch.setattr(time, "time", lambda: 1_000_000_000.0 + 3600)
    before = float(await admin.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    after = float(await admin.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
    assert claim.run.lease_expires_at is not None
    assert before + 30 <= claim.run.lease_expires_at <= after + 30
    assert before <= claim.run.created_at <= after
    # By the server's clock the lease is fresh, whatever the local clock says.
    stolen = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="b", lease_ttl=30)
    assert not stolen.acquired
    short = await store.claim_run(NewRun("app", "s", "wf", "{}"), owner="a", lease_ttl=0.2)
    await asyncio.sleep(0.3)
    taken = await store.claim_run(NewRun("app", "s", "wf", "{}"), owner="b", lease_ttl=30)
    assert taken.acquired
    assert taken.run.token == short.run.token + 1


async def test_nul_characters_are_rejected(make_store: Callable[..., PostgresStore]) -> None:
    """A NUL in an id raises RunIdError, in JSON text SerializationError; nothing is stored."""
    store = make_store()
    with pytest.raises(RunIdError):
        await store.claim_run(NewRun("app", "r\x00", "wf", "{}"), owner="a", lease_ttl=30)
    with pytest.raises(SerializationError):
        await store.claim_run(NewRun("app", "r", "wf", '"\x00"'), owner="a", lease_ttl=30)
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    with pytest.raises(RunIdError):
        await store.save_step("app", "r", claim.run.token, _step("t\x00"))
    with pytest.raises(RunIdError):
        await store.send_signal("app", "r", "n\x00", "1")
    loaded = await store.load_run("app", "r")
    assert loaded is not None
    assert loaded[1] == ()


async def test_values_round_trip_exactly(make_store: Callable[..., PostgresStore]) -> None:
    """JSON text comes back byte-for-byte: no jsonb reformatting, escapes or key reordering."""
    store = make_store()
    tricky = '{ "b" : 1,"a":[1.0, 1e3, "\\u0000", "\u2028", "😀", "\\ud800"] }'
    claim = await store.claim_run(NewRun("app", "r", "wf", tricky), owner="a", lease_ttl=30)
    saved = await store.save_step("app", "r", claim.run.token, _step("t", result=tricky))
    assert saved.step.result == tricky
    loaded = await store.load_run("app", "r")
    assert loaded is not None
    assert loaded[0].inputs == tricky
    assert loaded[1][0].result == tricky


async def test_concurrent_claims_from_many_connections_acquire_once(
    make_store: Callable[..., PostgresStore],
) -> None:
    """Many stores racing to claim one run: exactly one acquires, for a new and an expired run."""
    stores = [make_store(min_size=1, max_size=1) for _ in range(10)]
    await asyncio.gather(*(store.open() for store in stores))
    new = NewRun("app", "race", "wf", "{}")
    claims = await asyncio.gather(
        *(s.claim_run(new, owner=f"o{i}", lease_ttl=0.2) for i, s in enumerate(stores))
    )
    assert sum(c.acquired for c in claims) == 1
    await asyncio.sleep(0.3)
    claims = await asyncio.gather(
        *(s.claim_run(new, owner=f"n{i}", lease_ttl=30) for i, s in enumerate(stores))
    )
    winners = [c for c in claims if c.acquired]
    assert len(winners) == 1
    assert winners[0].run.token == 2
    assert winners[0].run.attempts == 2


async def test_takeover_returns_steps_committed_while_it_waited(
    make_store: Callable[..., PostgresStore],
) -> None:
    """A step the old owner saves during a takeover is fenced or in the new claim's steps."""
    old, new = make_store(), make_store()
    await old.open()
    await new.open()
    for i in range(30):
        run = NewRun("app", f"r{i}", "wf", "{}")
        first = await old.claim_run(run, owner="old", lease_ttl=30)
        save = asyncio.create_task(old.save_step("app", run.run_id, first.run.token, _step("t")))
        await asyncio.sleep(random.random() * 0.002)
        claim = await new.claim_run(run, owner="new", lease_ttl=30, steal_from="old")
        assert claim.acquired
        try:
            await save
        except LeaseLostError:
            assert claim.steps == ()
        else:
            assert [s.step_id for s in claim.steps] == ["t"]


async def test_retried_writes_return_their_first_attempts_result(
    make_store: Callable[..., PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaying a committed claim, finish or signal statement with its nonce changes nothing."""
    store = make_store()
    await store.open()
    claim_sql = store._q("SELECT * FROM {s}.claim_run($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
    args = ("app", "r", "wf", "{}", None, "a", 30.0, None, False, uuid.uuid4())
    first = await store._call(lambda conn: conn.fetchrow(claim_sql, *args))
    second = await store._call(lambda conn: conn.fetchrow(claim_sql, *args))
    assert first["acquired"]
    assert second["acquired"]
    assert second["token"] == first["token"] == 1
    assert second["attempts"] == 1
    assert not (
        await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="b", lease_ttl=30)
    ).acquired

    statements = _sql()
    nonce = uuid.uuid4()
    with monkeypatch.context() as patched:
        patched.setattr(_postgres().uuid, "uuid4", lambda: nonce)
        done = await store.finish_run("app", "r", 1, "completed", output='"out"')
        again = await store.finish_run("app", "r", 1, "completed", output='"out"')
    assert done == again
    assert (done.status, done.output) == ("completed", '"out"')
    with pytest.raises(LeaseLostError):
        await store.finish_run("app", "r", 1, "completed", output='"out"')

    signal_args = store._signal_args("app", "r", "go", "1")
    index = await store._fetchrow(statements.SEND_SIGNAL, *signal_args)
    repeat = await store._fetchrow(statements.SEND_SIGNAL, *signal_args)
    assert index["idx"] == repeat["idx"] == 0
    assert await store.send_signal("app", "r", "go", "2") == 1


async def test_a_finish_retried_while_its_first_attempt_commits_returns_the_run(
    make_store: Callable[..., PostgresStore],
    admin: Any,
    schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retried finish that waits for its first attempt to commit still recognises it."""
    store = make_store()
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    sql = _sql()
    nonce = uuid.uuid4()
    first = admin.transaction()
    await first.start()
    await admin.fetchrow(
        sql.render(sql.FINISH, f'"{schema}"'),
        *("app", "r", claim.run.token, "completed", '"out"', None, nonce, "channel", []),
    )
    monkeypatch.setattr(_postgres().uuid, "uuid4", lambda: nonce)
    retry = asyncio.create_task(
        store.finish_run("app", "r", claim.run.token, "completed", output='"out"')
    )
    await asyncio.sleep(0.2)
    assert not retry.done()  # it waits for the first attempt's row lock
    await first.commit()
    finished = await retry
    assert (finished.status, finished.output, finished.owner) == ("completed", '"out"', None)


async def test_connection_errors_are_retried_and_others_are_not(
    make_store: Callable[..., PostgresStore],
) -> None:
    """A killed backend is retried on a new connection; a SQL error raises StoreError at once."""
    store = make_store(retry_delay=0.001)
    await store.open()
    calls: list[int] = []

    async def dies_once(conn: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return int(await conn.fetchval("SELECT 42"))

    assert await store._call(dies_once) == 42
    assert len(calls) == 2

    for bad_sql in ("SELEC 1", "SELECT 1/0"):
        calls.clear()

        async def fails(conn: Any, sql: str = bad_sql) -> None:
            calls.append(1)
            await conn.execute(sql)

        with pytest.raises(StoreError) as info:
            await store._call(fails)
        assert not isinstance(info.value, StoreUnavailableError)
        assert isinstance(info.value.__cause__, _asyncpg().PostgresError)
        assert len(calls) == 1

    calls.clear()
    dup = store._q("INSERT INTO {s}.steps SELECT * FROM {s}.steps LIMIT 1")
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    await store.save_step("app", "r", claim.run.token, _step("t"))

    async def duplicate(conn: Any) -> None:
        calls.append(1)
        await conn.execute(dup)

    with pytest.raises(StoreError) as info:
        await store._call(duplicate)
    assert isinstance(info.value.__cause__, _asyncpg().UniqueViolationError)
    assert len(calls) == 1


async def test_unreachable_server_raises_store_unavailable() -> None:
    """After its bounded retries a store that cannot connect raises StoreUnavailableError."""
    store = _postgres().PostgresStore(
        "postgresql://postgres@127.0.0.1:1/test", retry_attempts=2, retry_delay=0.001
    )
    with pytest.raises(StoreUnavailableError) as info:
        await store.get_run("app", "r")
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(StoreUnavailableError):
        await store.open()
    await store.close()


async def test_operations_survive_backends_being_killed(
    make_store: Callable[..., PostgresStore], admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Claim/save/signal/finish cycles all complete without duplicates while backends are killed."""
    app_name = f"durable-chaos-{uuid.uuid4().hex[:8]}"
    store = make_store(application_name=app_name, max_size=8, retry_attempts=20, retry_delay=0.005)
    await store.open()
    runs, steps_per_run = 40, 5
    stop = asyncio.Event()
    killed = 0

    async def killer() -> None:
        nonlocal killed
        while not stop.is_set():
            await asyncio.sleep(random.uniform(0.005, 0.03))
            killed += await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                app_name,
            )

    async def cycle(i: int) -> None:
        run_id = f"r{i}"
        claim = await store.claim_run(NewRun("app", run_id, "wf", "{}"), owner="w", lease_ttl=60)
        assert claim.acquired
        for position in range(steps_per_run):
            step = _step(f"t#{position}", position, result=str(position))
            saved = await store.save_step("app", run_id, claim.run.token, step)
            assert saved.step == step
            assert await store.renew_lease("app", run_id, claim.run.token, 60) == LeaseState.OWNED
        assert await store.send_signal("app", run_id, "done", '"x"') == 0
        finished = await store.finish_run("app", run_id, claim.run.token, "completed", output="1")
        assert finished.status == "completed"

    caplog.set_level(logging.WARNING, logger="durable.stores.postgres")
    chaos = asyncio.create_task(killer())
    try:
        await asyncio.gather(*(cycle(i) for i in range(runs)))
    finally:
        stop.set()
        await chaos

    assert killed > 0
    assert any(getattr(r, "action", None) == "postgres_retry" for r in caplog.records)
    schema = store.schema
    counts = await admin.fetch(
        f'SELECT run_id, count(*) AS n FROM "{schema}".steps GROUP BY run_id'
    )
    assert {row["run_id"]: row["n"] for row in counts} == {
        f"r{i}": steps_per_run for i in range(runs)
    }
    signals = await admin.fetchval(f'SELECT count(*) FROM "{schema}".signals')
    assert signals == runs
    statuses = await admin.fetch(f'SELECT status, attempts, token FROM "{schema}".runs')
    assert all(tuple(row) == ("completed", 1, 1) for row in statuses)
    assert len(statuses) == runs


def test_from_url_reads_the_schema_parameter() -> None:
    """from_url accepts postgres URLs, keeps ?schema= for itself and passes the rest on."""
    from_url = _postgres().from_url
    store = from_url("postgresql://u@h:5/db?schema=jobs&sslmode=disable")
    assert store.schema == "jobs"
    assert store.dsn == "postgresql://u@h:5/db?sslmode=disable"
    assert from_url("postgres://u@h/db").schema == "durable"
    assert from_url("postgresql+asyncpg://u@h/db").dsn == "postgresql://u@h/db"
    with pytest.raises(ConfigurationError):
        from_url("mysql://u@h/db")


@pytest.mark.parametrize("scheme", ["postgresql+asyncpg", "postgresql", "postgres"])
async def test_from_url_connects_with_every_accepted_scheme(
    dsn: str, schema: str, scheme: str
) -> None:
    """A store made by from_url from each accepted scheme connects and stores a run."""
    rest = dsn.partition("://")[2]
    separator = "&" if "?" in rest else "?"
    store = _postgres().from_url(f"{scheme}://{rest}{separator}schema={schema}")
    try:
        claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
        assert claim.acquired
        assert store.schema == schema
        assert not store.dsn.startswith("postgresql+")
    finally:
        await store.close()


def _stored(outcome: object) -> StepRecord:
    assert isinstance(outcome, SavedStep), outcome
    return outcome.step


async def test_saves_waiting_for_a_connection_share_one_statement(
    make_store: Callable[..., PostgresStore],
) -> None:
    """Saves beyond the pool size go out together, each with its own first-writer-wins outcome."""
    store = make_store(min_size=1, max_size=1)
    mine = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    other = await store.claim_run(NewRun("app", "o", "wf", "{}"), owner="a", lease_ttl=30)
    token = mine.run.token
    await store.save_step("app", "r", token, _step("old", result='"first"'))
    outcomes = await asyncio.gather(
        *(store.save_step("app", "r", token, _step(f"t#{i}", i, str(i))) for i in range(20)),
        store.save_step("app", "r", token, _step("dup", result='"a"')),
        store.save_step("app", "r", token, _step("dup", result='"b"')),
        store.save_step("app", "r", token, _step("old", result='"second"')),
        store.save_step("app", "o", other.run.token + 1, _step("fenced")),
        store.save_step("app", "r", token, StepRecord("bad", 0, "t", "bogus", "1", None, 1, 1, 2)),  # type: ignore[arg-type]
        # Out of PostgreSQL's integer range: breaks the batch statement, so
        # every save of the batch is made again on its own.
        store.save_step("app", "r", token, _step("huge", 2**31)),
        return_exceptions=True,
    )
    *new, dup_a, dup_b, old, fenced, bad, huge = outcomes
    assert [_stored(saved) for saved in new] == [_step(f"t#{i}", i, str(i)) for i in range(20)]
    assert _stored(dup_a).result == _stored(dup_b).result == '"a"'
    assert _stored(old).result == '"first"'
    assert isinstance(fenced, LeaseLostError)
    assert isinstance(bad, StoreError)
    assert isinstance(huge, StoreError)
    loaded = await store.load_run("app", "r")
    assert loaded is not None
    assert len(loaded[1]) == 22
    assert await store.load_run("app", "o") == (other.run, ())


async def test_a_repeated_batch_returns_what_its_first_run_wrote(
    make_store: Callable[..., PostgresStore],
) -> None:
    """A batch statement run again (a retry after a lost connection) reports the same records."""
    store = make_store()
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    token = claim.run.token
    steps = [
        StepRecord(f"t#{i}", i, "t", "completed", str(i), None, 1, time.time(), time.time())
        for i in range(5)
    ]
    items = [
        (
            (
                "app",
                "r",
                token,
                s.step_id,
                s.position,
                s.task,
                s.status,
                s.result,
                s.error,
                s.attempts,
                s.started_at,
                s.finished_at,
            ),
            s,
        )
        for s in steps
    ]
    first = await store._save_many(items)
    again = await store._save_many(items)
    assert [_stored(saved) for saved in first] == steps
    assert [_stored(saved) for saved in again] == steps


# The statements that find a run by its key.
_KEYED = (
    "ENQUEUE",
    "ENQUEUED",
    "GET_RUN",
    "LOAD_RUN",
    "INSERT_STEP",
    "SAVE_STEP",
    "SAVE_STEPS",
    "RENEW",
    "RELEASE",
    "FINISH",
    "FINISHED",
    "CANCEL",
)


async def _generic_plans(store: PostgresStore) -> dict[str, str]:
    """The generic plan of each statement on runs, on a connection set up like the store's."""
    sql = _sql()
    conn = await store._connect()
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        plans: dict[str, str] = {}
        for name in (*_KEYED, "LIST_RUNS"):
            template = sql.list_runs_sql(()) if name == "LIST_RUNS" else getattr(sql, name)
            text = store._q(template)
            params = max(int(n) for n in re.findall(r"\$(\d+)", text))
            await conn.execute(f"PREPARE keyed AS {text}")
            rows = await conn.fetch(f"EXPLAIN EXECUTE keyed({', '.join(['NULL'] * params)})")
            await conn.execute("DEALLOCATE keyed")
            plans[name] = "\n".join(row[0] for row in rows)
        return plans
    finally:
        await conn.close()


async def test_lookups_by_key_use_the_primary_key_whatever_the_statistics(
    make_store: Callable[..., PostgresStore], admin: Any, schema: str
) -> None:
    """The generic plan of every lookup by key uses the primary key, from empty to grown tables.

    A generic plan is cached on a connection for as long as it lives, whatever
    the table grows to since: it must never scan the runs of an app, neither
    without statistics (new tables, autovacuum off) nor with those of a table
    analyzed while nearly empty.
    """
    store = make_store()
    await store.open()

    async def check(when: str) -> None:
        plans = await _generic_plans(store)
        for name in _KEYED:
            assert "runs_pkey" in plans[name], f"{when}, {name}:\n{plans[name]}"
            assert "Seq Scan" not in plans[name], f"{when}, {name}:\n{plans[name]}"
            for listing in ("runs_listed", "runs_by_"):
                assert listing not in plans[name], f"{when}, {name}:\n{plans[name]}"
        assert "runs_listed" in plans["LIST_RUNS"], f"{when}:\n{plans['LIST_RUNS']}"

    tables = ", ".join(f'"{schema}".{table}' for table in ("runs", "steps"))
    await check("new tables")
    await admin.execute(f"ANALYZE {tables}")
    await check("analyzed while empty")
    for i in range(200):
        await store.claim_run(NewRun("app", f"r{i}", "wf", "{}"), owner="a", lease_ttl=30)
    await check("200 runs, statistics of the empty tables")
    await admin.execute(f"ANALYZE {tables}")
    await check("200 runs, analyzed")
