"""CALLLIST's store query (schema 5): every filter is served by an index, and the answers are
exactly the recordings a plain reading of the filters gives, newest first.

Real SQLite files; the store's statement is taken from its connection with SQLite's trace and
explained on a second connection, as benchmarks/calllist.py does on 1,000,000 rows. The answers
are checked on PostgreSQL too (``answering``), and each filter's plan there uses its index.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from recorder.store.pg import PgStore
from recorder.store.pg_conn import PgSession, dialect
from recorder.store.records import FILTER_FIELDS, NewRecording, RecordingQuery, RecordingRow
from recorder.store.schema import CREATE_V1, CREATE_V2, CREATE_V3, CREATE_V4, SCHEMA_VERSION
from recorder.store.sqlite import SqliteStore
from tests.helpers.engines import ENGINE_PARAMS, ON_POSTGRESQL, EngineDatabase

T0 = 1_700_000_000
# Each field's values; "" is a field the call did not carry. Few values for the broad fields
# (GROUP, GATE, DNIS, USER2), many for the selective ones, so combinations both match and not.
VALUES: dict[str, tuple[str, ...]] = {
    "DEVICEID": tuple(str(1000 + i) for i in range(6)),
    "DEVICEALIAS": ("", "ext-a", "ext-b", "ext-c"),
    "CRM_USER": ("", "crm1", "crm2", "crm3", "crm4"),
    "SYS_USER": ("", "sys1", "sys2", "sys3"),
    "ANI": ("", *(f"61455500{i:02d}" for i in range(30))),
    "DNIS": ("", "8005550100", "8005550101", "8005550102"),
    "GROUP": ("", "Sales", "Support", "Zoë's"),
    "GATE": ("", "gate1", "gate2"),
    "USER1": ("", "", *(f"A{i:05d}" for i in range(40))),
    "USER2": ("", "campaign1", "campaign2", "campaign3"),
    "USER15": ("", "a & b <c>", "y"),
}
OTHER_VALUES = ("", "x", "y")  # the fields not listed above
ROWS = 400


@dataclasses.dataclass(frozen=True)
class Stored:
    """What the test stored for one recording: its RECORDID, second and filter fields."""

    ident: int
    second: int
    fields: Mapping[str, str]


def field_values(rng: random.Random) -> dict[str, str]:
    return {name: rng.choice(VALUES.get(name, OTHER_VALUES)) for name in FILTER_FIELDS}


def fill(store: SqliteStore) -> list[Stored]:
    rng = random.Random(5)
    stored = []
    for n in range(ROWS):
        values = field_values(rng)
        # Starts a few seconds apart, some in the same second, out of order: ties in
        # recording_time go to the higher RECORDID.
        start = T0 + rng.randrange(0, 2 * ROWS) + rng.random()
        meta = {k: v for k, v in values.items() if k != "DEVICEID" and v}
        ident = store.insert_recording(NewRecording(
            device_id=values["DEVICEID"], call_instance=f"c{n}", channel=1,
            filename=f"/rec/{n}.wav", media_format="wav", sample_rate=8000, start_time=start,
            core_ident=1, meta=meta))
        stored.append(Stored(ident, int(start), values))
    return stored


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SqliteStore, list[Stored]]]:
    """The SQLite store filled (its plans are read with SQLite's own tools)."""
    store = SqliteStore(tmp_path_factory.mktemp("calllist") / "recorder.sqlite3")
    store.open()
    yield store, fill(store)
    store.close()


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def answering(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[SqliteStore, list[Stored]]]:
    """The store on each engine, filled the same way."""
    store = EngineDatabase(request.param, tmp_path_factory.mktemp("calllist"), request).store()
    store.open()
    yield store, fill(store)
    store.close()


def expected(stored: list[Stored], query: RecordingQuery) -> list[int]:
    """The recordings the manual's CALLLIST describes, worked out without SQL."""
    hits = [s for s in stored
            if all(s.fields[name] == value for name, value in query.equals.items())
            and (query.start is None or s.second >= query.start)
            and (query.end is None or s.second <= query.end)]
    hits.sort(key=lambda s: (s.second, s.ident), reverse=True)
    return [s.ident for s in hits[:query.limit]]


def listed(store: SqliteStore, query: RecordingQuery) -> list[int]:
    return [row.ident for row in store.list_recordings(query)]


def some_value(stored: list[Stored], name: str, n: int = 0) -> str:
    """A non-blank value of ``name`` that some recording carries."""
    values = sorted({s.fields[name] for s in stored} - {""})
    return values[n % len(values)]


@pytest.mark.parametrize("name", FILTER_FIELDS)
def test_each_filter_alone_finds_exactly_its_recordings(
        answering: tuple[SqliteStore, list[Stored]], name: str) -> None:
    store, stored = answering
    for n in range(3):
        value = some_value(stored, name, n)
        for query in (RecordingQuery(equals={name: value}, limit=1000),
                      RecordingQuery(equals={name: value}, limit=3),
                      RecordingQuery(equals={name: value}, start=T0 + 100, end=T0 + 500,
                                     limit=1000)):
            want = expected(stored, query)
            assert listed(store, query) == want, query
        assert want, f"{name}={value!r} should match something in range"
    assert listed(store, RecordingQuery(equals={name: "never stored"})) == []


def test_every_pair_of_filters_gives_the_same_answer_as_reading_them_plainly(
        answering: tuple[SqliteStore, list[Stored]]) -> None:
    store, stored = answering
    matched = 0
    for first, second in itertools.combinations(FILTER_FIELDS, 2):
        # Values from one recording, so that each pair matches at least that one.
        row = next(s for s in stored if s.fields[first] and s.fields[second])
        for start, end in ((None, None), (row.second - 300, row.second + 300)):
            query = RecordingQuery(equals={first: row.fields[first],
                                           second: row.fields[second]},
                                   start=start, end=end, limit=50)
            got = listed(store, query)
            assert got == expected(stored, query), query
            assert row.ident in got or len(got) == 50
            matched += len(got)
    assert matched > 0


def test_a_blank_value_still_means_the_field_is_blank(
        answering: tuple[SqliteStore, list[Stored]]) -> None:
    # CALLLIST itself drops blank filters, but the store answers what it is asked: the partial
    # indexes do not hold blank fields, and the query must not lose them.
    store, stored = answering
    for name in ("USER1", "GATE", "DNIS", "GROUP", "ANI"):
        query = RecordingQuery(equals={name: ""}, limit=1000)
        want = expected(stored, query)
        assert want
        assert listed(store, query) == want
    query = RecordingQuery(equals={"USER1": "", "DEVICEID": "1001", "GATE": "gate1"}, limit=1000)
    assert listed(store, query) == expected(stored, query)


def statement_for(store: SqliteStore, query: RecordingQuery) -> str:
    """The SELECT the store runs for ``query``, values inlined."""
    traced: list[str] = []
    assert store._conn is not None
    store._conn.set_trace_callback(traced.append)
    try:
        store.list_recordings(query)
    finally:
        store._conn.set_trace_callback(None)
    (sql,) = [s for s in traced if s.lstrip().upper().startswith("SELECT")]
    return sql


def plan(store: SqliteStore, sql: str) -> str:
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        return "; ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
    finally:
        conn.close()


INDEX = {"DEVICEID": "recordings_by_device", "ANI": "recordings_by_ani",
         "CRM_USER": "recordings_by_crm_user", "SYS_USER": "recordings_by_sys_user",
         "DEVICEALIAS": "recordings_by_alias", "GROUP": "recordings_by_group",
         "GATE": "recordings_by_gate", "DNIS": "recordings_by_dnis",
         **{f"USER{i}": f"recordings_by_user{i}" for i in range(1, 16)}}


@pytest.mark.parametrize("name", FILTER_FIELDS)
def test_no_filter_walks_the_table(filled: tuple[SqliteStore, list[Stored]], name: str) -> None:
    store, _ = filled
    for start, end in ((None, None), (T0, T0 + 86400)):
        sql = statement_for(store, RecordingQuery(equals={name: "x"}, start=start, end=end))
        explained = plan(store, sql)
        assert f"SEARCH r USING INDEX {INDEX[name]} (" in explained, explained
        assert "SCAN r" not in explained, explained
        assert "TEMP B-TREE" not in explained, explained  # read in CALLLIST's order, no sort


@pytest.mark.parametrize(("equals", "leader"), [
    # A phone's calls through one gate: the phone's few, not the gate's many.
    ({"GATE": "gate1", "DEVICEID": "1001"}, "DEVICEID"),
    ({"DNIS": "8005550100", "ANI": "6145550001"}, "ANI"),
    ({"GROUP": "Sales", "USER1": "A00001"}, "USER1"),
    ({"USER2": "campaign1", "CRM_USER": "crm1", "GATE": "gate2"}, "CRM_USER"),
    ({"GATE": "gate1", "GROUP": "Sales", "DNIS": "8005550101"}, "DNIS"),
])
def test_the_most_selective_filter_leads(filled: tuple[SqliteStore, list[Stored]],
                                         equals: dict[str, str], leader: str) -> None:
    store, _ = filled
    explained = plan(store, statement_for(store, RecordingQuery(equals=equals)))
    assert explained.startswith(f"SEARCH r USING INDEX {INDEX[leader]} ("), explained


def test_export_by_a_user_field_uses_its_index(
        filled: tuple[SqliteStore, list[Stored]]) -> None:
    store, stored = filled
    value = some_value(stored, "USER1")
    traced: list[str] = []
    assert store._conn is not None
    store._conn.set_trace_callback(traced.append)
    try:
        row = store.find_recording("user1", value)
    finally:
        store._conn.set_trace_callback(None)
    newest = max((s for s in stored if s.fields["USER1"] == value),
                 key=lambda s: (s.second, s.ident))
    assert row is not None
    assert row.ident == newest.ident
    explained = plan(store, traced[-1])
    assert "SEARCH r USING INDEX recordings_by_user1 (user1=?)" in explained, explained


def test_rows_read_back_are_whole_frozen_recordings(
        answering: tuple[SqliteStore, list[Stored]]) -> None:
    store, stored = answering
    first = stored[0]
    (row,) = [r for r in store.list_recordings(RecordingQuery(
        equals={"DEVICEID": first.fields["DEVICEID"]}, start=first.second, end=first.second,
        limit=1000)) if r.ident == first.ident]
    rebuilt = RecordingRow(**{f.name: getattr(row, f.name)
                              for f in dataclasses.fields(RecordingRow)})
    assert row == rebuilt
    assert row.filename == "/rec/0.wav"
    assert (row.device_id, row.recording_time) == (first.fields["DEVICEID"], first.second)
    assert row.meta["USER1"] == first.fields["USER1"]
    assert (row.agent_first_name, row.agent_last_name, row.global_id) == ("", "", "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.filename = "/elsewhere.wav"  # type: ignore[misc]


def test_a_version_4_database_gains_the_partial_indexes(tmp_path: Path) -> None:
    path = tmp_path / "v4.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        f"{CREATE_V1}\n{CREATE_V2}\n{CREATE_V3}\n{CREATE_V4}\nPRAGMA user_version = 4;")
    for n, (user1, gate) in enumerate((("A1", "gate1"), ("", "gate1"), ("A1", ""))):
        conn.execute("INSERT INTO recordings (device_id, filename, recording_time, media_format,"
                     " sample_rate, start_time, status, core_ident, user1, gate) VALUES"
                     " ('1001', ?, ?, 'wav', 8000, ?, 'complete', 1, ?, ?)",
                     (f"/r/{n}.wav", 10 + n, 10.0 + n, user1, gate))
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    store.open()
    try:
        assert listed(store, RecordingQuery(equals={"USER1": "A1"})) == [3, 1]
        assert listed(store, RecordingQuery(equals={"GATE": "gate1"})) == [2, 1]
        assert listed(store, RecordingQuery(equals={"USER1": ""})) == [2]
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 5
        indexes = {r[0]: r[1] for r in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
            " AND tbl_name = 'recordings'")}
        assert set(INDEX.values()) <= set(indexes)
        # Partial: a blank field is not in its index.
        assert "WHERE user1 != ''" in indexes["recordings_by_user1"]
        assert conn.execute("SELECT count(*) FROM recordings INDEXED BY recordings_by_user1"
                            " WHERE user1 != ''").fetchone()[0] == 2
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pg_filled(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
              ) -> Iterator[tuple[PgStore, EngineDatabase]]:
    """The PostgreSQL store filled, its statistics gathered (ANALYZE) as autovacuum would."""
    database = EngineDatabase("postgresql", tmp_path_factory.mktemp("calllist-pg"), request)
    store = database.store()
    assert isinstance(store, PgStore)
    store.open()
    fill(store)
    database.query("ANALYZE recordings")
    yield store, database
    store.close()


def pg_plan(store: PgStore, database: EngineDatabase, query: RecordingQuery,
            monkeypatch: pytest.MonkeyPatch) -> str:
    """PostgreSQL's plan of the statement the store runs for ``query``, with sequential scans
    priced out: on 400 rows reading the table is cheapest, and what is checked is that the
    filter's index can serve the statement (on a million rows the planner then takes it)."""
    traced: list[tuple[str, tuple[object, ...]]] = []
    execute = PgSession.execute

    def tracing(session: PgSession, sql: str, params: Any = ()) -> Any:
        traced.append((sql, tuple(params)))
        return execute(session, sql, params)

    monkeypatch.setattr(PgSession, "execute", tracing)
    store.list_recordings(query)
    monkeypatch.undo()
    ((sql, params),) = [t for t in traced if t[0].lstrip().upper().startswith("SELECT")]
    assert database.pg is not None
    with database.pg.connect() as conn:
        conn.execute("SET enable_seqscan = off")
        # The store's own rewriting of its SQL, as it ran.
        rows = conn.execute(f"EXPLAIN {dialect(sql)[0]}", params).fetchall()  # type: ignore[arg-type]
    return "\n".join(str(r[0]) for r in rows)


@ON_POSTGRESQL
@pytest.mark.parametrize("name", FILTER_FIELDS)
def test_each_filter_uses_its_index_on_postgresql(
        pg_filled: tuple[PgStore, EngineDatabase], name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, database = pg_filled
    for start, end in ((None, None), (T0, T0 + 86400)):
        explained = pg_plan(store, database, RecordingQuery(equals={name: "x"}, start=start,
                                                            end=end), monkeypatch)
        # An index scan, or a bitmap one and a sort where the planner reckons a third of
        # the rows match (USER3..USER14 hold "", "x" or "y" here).
        assert (f"Index Scan using {INDEX[name]} on recordings r" in explained
                or f"Bitmap Index Scan on {INDEX[name]}" in explained), explained
        assert "Seq Scan" not in explained, explained
