"""CALLLIST benchmark: filtered queries over a large store, through the API and on the database.

    .venv/bin/python benchmarks/calllist.py [--rows 1000000] [--cache DIR] [--repeats 40]

Builds (once; later runs reuse it) a data directory whose SQLite database holds ``--rows``
recordings spread over a year: 400 devices, each an agent's phone (the directory holds the
agents, so CALLLIST's AGENTFIRSTNAME/AGENTLASTNAME are joined in), 300,000 callers (ANI), 20
DNIS, 12 groups, 8 gates, an account number in USER1 and a campaign in USER2. The scaffolding
fills the file directly with executemany, in time order, in transactions of 100,000 rows, after
the store itself has created the schema; opening the cache with a newer recorder runs the
store's migrations on it (their time is printed).

Then a real ``Recorder`` (no boards) serves that data directory in this process, and each
filter is sent as CALLLIST over the socket API (one connection, each request waiting for its
answer), ``--repeats`` times with a different value each time (a device, day, caller... drawn
from the data). In turn with each request (one or the other first), the statement the store
runs for it, with its values bound (the store's own SQL for the handler's query), is run by
another process on a read-only connection it keeps open, and its rows fetched, timed by that
process: the ratio of the medians is the API's cost over the database's for the same question.
(SQLite's trace of the store's connection, values inlined, checks that the store runs one
statement and gives the plan.) The process is not pinned: the API
runs on its own threads, as in the service.

Prints, per filter: rows returned, median and 95th percentile through the API and directly,
the ratio, the targets (median < 10 ms, ratio <= 2), and the query plan (EXPLAIN QUERY PLAN).
``--explain`` prints instead, for every filter the manual's CALLLIST accepts (alone, with a
day's range, and in a few combinations), the plan of the statement the store runs for it and
that statement's time run once directly: a filter that walks the table shows ``SCAN r``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from recorder.api.handlers.status import stored_calls
from recorder.api.protocol.params import Params
from recorder.api.protocol.xmlcodec import render_result
from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.store.factory import Store
from recorder.store.records import FILTER_FIELDS, RecordingQuery
from recorder.store.schema import SCHEMA_VERSION
from recorder.store.sqlite import _CALLLIST_SELECT, SqliteStore, _query_tail

HOST = "127.0.0.1"
DEVICES = 400
CALLERS = 300_000
ACCOUNTS = 200_000
YEAR = 365 * 86400
DAY = 86400
BATCH = 100_000
GROUPS = ("Sales", "Support", "Billing", "Retention", "Tech", "Claims", "Renewals", "Onboarding",
          "Collections", "VIP", "Spanish", "Overflow")
FIRST_NAMES = ("Ana", "Ben", "Chloé", "Dev", "Eva", "Farid", "Grace", "Hugo", "Ines", "Jon")
LAST_NAMES = ("Smith", "García", "Okafor", "Nguyen", "Müller", "Rossi", "Kowalski", "Sato")
MIN_RUNS = 5
TARGET_MS = 10.0
TARGET_RATIO = 2.0
RECORDING_COLUMNS = (
    "agent_id", "ani", "audio_size", "calldirection", "callid", "channel", "device_alias",
    "device_id", "dnis", "duration", "filename", "gate", "globalid", "recording_time", "sgroup",
    "user1", "user2", "crm_user", "sys_user", "cti_initiated", "agent_initiated", "media_format",
    "sample_rate", "start_time", "stop_time", "status", "stop_reason", "core_ident",
)


# --- the data ---------------------------------------------------------------------------------


def device_id(index: int) -> str:
    return str(3000 + index)


def _rows(count: int, end: int, rng: np.random.Generator) -> Iterator[tuple[Any, ...]]:
    """``count`` recordings over the year before ``end``, oldest first."""
    starts = np.sort(rng.uniform(end - YEAR, end, count))
    devices = rng.integers(0, DEVICES, count)
    callers = rng.integers(0, CALLERS, count)
    dnis = rng.integers(0, 20, count)
    gates = rng.integers(1, 9, count)
    accounts = rng.integers(0, ACCOUNTS, count)
    campaigns = rng.integers(1, 31, count)
    outbound = np.less(rng.random(count), 0.3)
    durations = np.round(rng.exponential(180.0, count) + 5.0, 1)
    for i in range(count):
        start, d = float(starts[i]), int(devices[i])
        dev, duration = device_id(d), float(durations[i])
        stamp = time.strftime("%Y%m%d/{}/{}-%H-%M-%S", time.localtime(start))
        yield (
            d + 1, f"614{callers[i]:07d}", int(duration * 16000) + 44,
            "O" if outbound[i] else "I", f"C{i:09d}", d + 1, f"ext-{dev}", dev,
            f"80055501{dnis[i]:02d}", duration,
            f"/var/lib/recorder/recordings/{stamp.format(dev, dev)}.wav", f"gate{gates[i]}",
            str(i + 1), int(start), GROUPS[d % len(GROUPS)], f"A{accounts[i]:07d}",
            f"campaign{campaigns[i]}", f"crm{d + 1:04d}", f"agent{d + 1:04d}", "Y", "N", "wav",
            8000, start, start + duration, "complete", "callstop", 1,
        )


def build(db: Path, rows: int) -> None:
    """Create the schema through the store, then fill it directly (benchmark scaffolding)."""
    store = SqliteStore(db)
    store.open()  # the real schema, every migration
    store.close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # scaffolding: a crash means building again
    rng = np.random.default_rng(42)
    with conn:
        conn.execute("BEGIN")
        for d in range(DEVICES):
            conn.execute(
                "INSERT INTO users (user_id, username, first_name, last_name, add_time,"
                " crm_user, sys_user) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (d + 1, f"agent{d + 1:04d}", FIRST_NAMES[d % len(FIRST_NAMES)],
                 LAST_NAMES[d % len(LAST_NAMES)], time.time(), f"crm{d + 1:04d}",
                 f"agent{d + 1:04d}"))
            conn.execute("INSERT INTO agent_phones (phone_id, user_id, assigned_time)"
                         " VALUES (?, ?, ?)", (device_id(d), d + 1, time.time()))
        conn.execute("COMMIT")
    sql = (f"INSERT INTO recordings ({', '.join(RECORDING_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(RECORDING_COLUMNS))})")
    source = _rows(rows, int(time.time()), rng)
    done = 0
    while done < rows:
        batch = [row for _, row in zip(range(min(BATCH, rows - done)), source, strict=False)]
        conn.execute("BEGIN")
        conn.executemany(sql, batch)
        conn.execute("COMMIT")
        done += len(batch)
        print(f"  {done:,} rows", end="\r", flush=True)
    conn.close()
    print()


def open_cache(directory: Path, rows: int) -> float:
    """Make sure ``directory`` holds the data; returns the seconds any migration took."""
    db = directory / "recorder.sqlite3"
    if db.exists():
        with contextlib.closing(sqlite3.connect(db)) as conn:
            count = conn.execute("SELECT count(*) FROM recordings").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        if count == rows:
            began = time.perf_counter()
            store = SqliteStore(db)
            store.open()  # brings an older cache up to this recorder's schema
            store.close()
            migrated = time.perf_counter() - began if version < SCHEMA_VERSION else 0.0
            print(f"cached database {db}: {count:,} recordings, schema {version}"
                  + (f" -> {SCHEMA_VERSION} in {migrated:.1f} s" if migrated else ""))
            return migrated
        print(f"cached database {db} holds {count:,} recordings, not {rows:,}: building anew")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    print(f"building {db} with {rows:,} recordings ...")
    began = time.perf_counter()
    build(db, rows)
    print(f"built in {time.perf_counter() - began:.0f} s "
          f"({db.stat().st_size / 2**20:,.0f} MiB)")
    return 0.0


# --- the filters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """What the filters draw their values from: a random existing recording."""

    device: str
    time: int
    ani: str
    account: str
    group: str
    crm_user: str
    dnis: str
    gate: str
    campaign: str
    sys_user: str
    alias: str


Filter = Callable[[Sample], dict[str, str]]


def _day(t: int) -> tuple[str, str]:
    start = t - t % DAY
    return str(start), str(start + DAY - 1)


FILTERS: dict[str, Filter] = {
    # A supervisor looking at one phone's day.
    "device + day": lambda s: dict(zip(("CALLDATESTART", "CALLDATEEND"), _day(s.time),
                                       strict=True), DEVICEID=s.device),
    # Everything recorded in one hour (about 114 calls).
    "1 hour, all devices": lambda s: {"CALLDATESTART": str(s.time - 3600),
                                      "CALLDATEEND": str(s.time)},
    # The newest calls (a wallboard).
    "newest 10 (CALLCOUNT)": lambda s: {"CALLCOUNT": "10"},
    # One phone's newest 100.
    "device, CALLCOUNT 100": lambda s: {"DEVICEID": s.device, "CALLCOUNT": "100"},
    # A caller's history (a screen pop).
    "ANI": lambda s: {"ANI": s.ani},
    # A customer's history by account number.
    "USER1 (account)": lambda s: {"USER1": s.account},
    # An agent's calls in a week.
    "CRM_USER + 7 days": lambda s: {"CRM_USER": s.crm_user,
                                    "CALLDATESTART": str(s.time - 7 * DAY),
                                    "CALLDATEEND": str(s.time)},
    # A group's newest 50 in a month.
    "GROUP + 30 days, 50": lambda s: {"GROUP": s.group, "CALLDATESTART": str(s.time - 30 * DAY),
                                      "CALLDATEEND": str(s.time), "CALLCOUNT": "50"},
    # A DNIS in one day (a campaign number's traffic).
    "DNIS + day, 100": lambda s: dict(zip(("CALLDATESTART", "CALLDATEEND"), _day(s.time),
                                          strict=True), DNIS=s.dnis, CALLCOUNT="100"),
    # A caller never seen: the whole answer is "nothing".
    "ANI, no match": lambda s: {"ANI": "6999999999"},
}


def samples(conn: sqlite3.Connection, count: int, seed: int) -> list[Sample]:
    top = conn.execute("SELECT max(ident) FROM recordings").fetchone()[0]
    rng = np.random.default_rng(seed)
    picked = []
    for ident in rng.integers(1, top + 1, count):
        row = conn.execute("SELECT device_id, recording_time, ani, user1, sgroup, crm_user, dnis,"
                           " gate, user2, sys_user, device_alias FROM recordings WHERE ident = ?",
                           (int(ident),)).fetchone()
        picked.append(Sample(*row))
    return picked


# --- measuring ---------------------------------------------------------------------------------


class ApiClient:
    """One socket-API connection; ``ask`` sends a request and returns its RESULT line."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection((HOST, port), timeout=60)
        self._buf = b""

    def ask(self, message: bytes) -> bytes:
        self._sock.sendall(message)
        while b"\r\n" not in self._buf:
            chunk = self._sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the recorder closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def close(self) -> None:
        self._sock.close()


def calllist_xml(n: int, params: dict[str, str]) -> bytes:
    fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in params.items())
    return (f"<REQUEST><TYPE>CALLLIST</TYPE><REQUESTID>{n}</REQUESTID>{fields}</REQUEST>\r\n"
            ).encode()


@dataclass
class Figures:
    """One filter's figures."""

    name: str
    runs: int
    rows: float  # median rows returned
    api_ms: float
    api_p95_ms: float
    db_ms: float
    db_p95_ms: float
    handler_ms: float  # the CALLLIST handler, its store call included, called directly
    render_ms: float  # rendering its RESULT
    plan: str

    @property
    def ratio(self) -> float:
        return self.api_ms / self.db_ms if self.db_ms else float("inf")


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


@dataclass
class Bench:
    """What every measurement uses: the API connection, the recorder's store and the
    statements it runs, the direct connection to the database, and the seconds one filter may
    take."""

    client: ApiClient
    store: Store
    traced: list[str]
    direct: sqlite3.Connection
    budget: float
    max_rows: int
    sql: SqlProcess

    def statement(self, name: str, message: bytes) -> str:
        """The SELECT the store runs for ``message`` (sent untimed through the API)."""
        self.traced.clear()
        answer = self.client.ask(message)
        if b"<RESULTCODE>20</RESULTCODE>" not in answer:
            raise RuntimeError(f"{name}: CALLLIST failed: {answer[:300]!r}")
        statements = [s for s in self.traced if s.lstrip().upper().startswith("SELECT")]
        if len(statements) != 1:
            raise RuntimeError(f"{name}: expected one SELECT from the store, saw {self.traced}")
        return statements[0]


class SqlProcess:
    """The database side, in a process of its own (``--sql-process``): it runs each statement
    it is sent with its values bound, on one read-only connection kept open (so sqlite3's
    statement cache keeps it prepared, as the store's does), fetches the rows and says how
    long that took by its own clock."""

    def __init__(self, database: Path) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--sql-process", str(database)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, sql: str, args: list[Any]) -> tuple[float, int]:
        """(milliseconds, rows) of ``sql`` with ``args``, run in the other process."""
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(json.dumps([sql, args]) + "\n")
        self._proc.stdin.flush()
        ms, rows = json.loads(self._proc.stdout.readline())
        return float(ms), int(rows)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(30)


def sql_process_main(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        for line in sys.stdin:
            sql, args = json.loads(line)
            began = time.perf_counter()
            found = conn.execute(sql, args).fetchall()
            ms = (time.perf_counter() - began) * 1000
            print(json.dumps([ms, len(found)]), flush=True)
    return 0


def parameterised(params: dict[str, str], max_rows: int, now: float) -> tuple[str, list[Any]]:
    """The statement the store runs for CALLLIST with ``params``, and its values: as the
    handler (stored_calls) builds the query, through the store's own SQL."""
    equals = {name: value for name in FILTER_FIELDS if (value := params.get(name, "").strip())}
    start, end = params.get("CALLDATESTART"), params.get("CALLDATEEND")
    count = int(params["CALLCOUNT"]) if "CALLCOUNT" in params else None
    query = RecordingQuery(equals=equals, start=int(start) if start else None,
                           end=int(end) if end else None,
                           limit=min(count or max_rows, max_rows))
    tail, args = _query_tail(query)
    return _CALLLIST_SELECT + tail, [now, *args]


def measure(bench: Bench, name: str, make: Filter, picks: list[Sample]) -> Figures:
    client, direct = bench.client, bench.direct
    api: list[float] = []
    db: list[float] = []
    handler: list[float] = []
    render: list[float] = []
    rows: list[int] = []
    plan = ""
    deadline = time.monotonic() + bench.budget
    for n, pick in enumerate(picks, 1):
        params = make(pick)
        message = calllist_xml(n, params)
        # Untimed first: it tells which statement the store runs, and leaves the pages it reads
        # as warm for the API's timed run as for the direct one.
        sql = bench.statement(name, message)
        timed: dict[str, float] = {}
        found_rows = 0
        answer = b""
        # In turn, the API first or the database first, so neither gains from going second.
        for side in (("api", "db") if n % 2 else ("db", "api")):
            if side == "api":
                began = time.perf_counter()
                answer = client.ask(message)
                timed[side] = (time.perf_counter() - began) * 1000
            else:
                bound, values = parameterised(params, bench.max_rows, time.time())
                timed[side], found_rows = bench.sql.run(bound, values)
        api.append(timed["api"])
        db.append(timed["db"])
        returned = answer.count(b"<SEARCHRESULT>")
        if b"<RESULTCODE>20</RESULTCODE>" not in answer or returned != found_rows:
            raise RuntimeError(f"{name}: the API answered {answer[:200]!r}... with {returned} "
                               f"rows, the database {found_rows}")
        rows.append(returned)
        # Where the API's time goes: the CALLLIST handler (its store call included) and the
        # rendering of its RESULT, called as the API calls them.
        began = time.perf_counter()
        result = stored_calls(bench.store, Params(params), bench.max_rows, time.time())
        handled = time.perf_counter()
        render_result("CALLLIST", str(n), result)
        handler.append((handled - began) * 1000)
        render.append((time.perf_counter() - handled) * 1000)
        if not plan:
            plan = "; ".join(str(r[3]) for r in direct.execute(f"EXPLAIN QUERY PLAN {sql}"))
        if time.monotonic() > deadline and n >= MIN_RUNS:
            break  # a slow filter: fewer runs, the run stays bounded
    return Figures(name, len(api), statistics.median(rows), statistics.median(api), p95(api),
                   statistics.median(db), p95(db), statistics.median(handler),
                   statistics.median(render), plan)


def explain(bench: Bench, pick: Sample) -> None:
    """The plan of every CALLLIST filter the manual lists, alone, with a day, and combined."""
    value = {"DEVICEID": pick.device, "CRM_USER": pick.crm_user, "SYS_USER": pick.sys_user,
             "DEVICEALIAS": pick.alias, "GROUP": pick.group, "GATE": pick.gate, "ANI": pick.ani,
             "DNIS": pick.dnis, "USER1": pick.account, "USER2": pick.campaign}
    day = dict(zip(("CALLDATESTART", "CALLDATEEND"), _day(pick.time), strict=True))
    cases: list[dict[str, str]] = []
    for name in FILTER_FIELDS:
        # USER3-USER15 are blank in this data: a value nobody has, so nothing stops early.
        one = {name: value.get(name, "no such value")}
        cases += [one, {**one, **day}]
    cases += [{"DEVICEID": pick.device, "GATE": pick.gate},
              {"ANI": pick.ani, "DNIS": pick.dnis},
              {"USER2": pick.campaign, "DEVICEID": pick.device},
              {"GROUP": pick.group, "GATE": pick.gate, "DNIS": pick.dnis}]
    for n, params in enumerate(cases, 1):
        label = " + ".join("day" if k == "CALLDATESTART" else k for k in params
                           if k != "CALLDATEEND")
        sql = bench.statement(label, calllist_xml(n, params))
        began = time.perf_counter()
        found = len(bench.direct.execute(sql).fetchall())
        took = (time.perf_counter() - began) * 1000
        plan = "; ".join(str(r[3]) for r in bench.direct.execute(f"EXPLAIN QUERY PLAN {sql}"))
        verdict = "WALKS THE TABLE" if "SCAN r" in plan else "indexed"
        print(f"{label:<28} {found:>5} rows {took:>9.2f} ms  {verdict}: {plan}", flush=True)


def trace_statements(recorder: Recorder) -> list[str]:
    """Collect every statement the recorder's store runs (with its values inlined)."""
    store: object = recorder.store.recordings if recorder.store is not None else None
    # The store keeps its connection to itself, behind wrappers such as the outage spool; a
    # benchmark may look inside: this is how it learns the exact SQL the store runs for
    # CALLLIST, instead of typing a query that might differ.
    while not isinstance(store, SqliteStore) and hasattr(store, "_inner"):
        store = store._inner
    if not isinstance(store, SqliteStore) or store._conn is None:
        raise RuntimeError("the benchmark needs the SQLite store")
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    return statements


def run(args: argparse.Namespace) -> tuple[list[Figures], float]:
    migrated = open_cache(args.cache, args.rows)
    doc = {"storage": {"data_dir": str(args.cache)},
           "api": {"host": HOST, "socket_port": 0, "web_port": 0}, "boards": []}
    recorder = Recorder(config_from_dict(doc))
    recorder.start()
    try:
        assert recorder.api is not None
        assert recorder.store is not None
        traced = trace_statements(recorder)
        client = ApiClient(recorder.api.socket_address[1])
        uri = f"file:{args.cache / 'recorder.sqlite3'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as direct:
            picks = samples(direct, args.repeats, seed=7)
            names = [n for n in FILTERS if not args.only or n in args.only]
            bench = Bench(client, recorder.store, traced, direct, args.budget,
                          recorder.config.api.calllist_max_rows,
                          SqlProcess(args.cache / "recorder.sqlite3"))
            results = []
            if args.explain:
                explain(bench, picks[0])
                names = []
            for name in names:
                figures = measure(bench, name, FILTERS[name], picks)
                report(figures)
                results.append(figures)
            bench.sql.close()
        client.close()
    finally:
        recorder.stop()
    return results, migrated


HEADER = (f"{'filter':<22} {'runs':>4} {'rows':>5} {'API p50':>8} {'API p95':>8} "
          f"{'DB p50':>8} {'DB p95':>8} {'ratio':>6} {'handler':>8} {'render':>7}  target")


def report(f: Figures) -> None:
    fast, close = f.api_ms < TARGET_MS, f.ratio <= TARGET_RATIO
    verdict = (f"{'ok' if fast else 'MISSED'} < {TARGET_MS:g} ms, "
               f"{'ok' if close else 'MISSED'} <= {TARGET_RATIO:g}x")
    print(f"{f.name:<22} {f.runs:>4} {f.rows:>5.0f} {f.api_ms:>8.2f} {f.api_p95_ms:>8.2f} "
          f"{f.db_ms:>8.2f} {f.db_p95_ms:>8.2f} {f.ratio:>6.1f} {f.handler_ms:>8.2f} "
          f"{f.render_ms:>7.2f}  {verdict}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=None,
                        help="data directory kept between runs (default: "
                             "~/.cache/recorder-bench/calllist-<rows>)")
    parser.add_argument("--repeats", type=int, default=40, help="runs per filter")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds per filter after which it stops (at least 5 runs)")
    parser.add_argument("--only", action="append", help="run this filter only (repeatable)")
    parser.add_argument("--plans", action="store_true", help="print each query plan")
    parser.add_argument("--explain", action="store_true",
                        help="only print the plan of every filter the manual's CALLLIST accepts")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--sql-process", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sql_process is not None:
        return sql_process_main(args.sql_process)
    if args.cache is None:
        args.cache = Path.home() / ".cache" / "recorder-bench" / f"calllist-{args.rows}"
    # "no boards configured" is this benchmark's point, not a warning worth printing.
    logging.basicConfig(level=logging.ERROR)
    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs; {args.rows:,} recordings, up to {args.repeats} runs per filter")
    print("milliseconds; handler and render: the CALLLIST handler (store call included) and the"
          " rendering of its RESULT, called directly")
    if not args.explain:
        print(HEADER)
    results, migrated = run(args)
    if args.plans:
        print("query plans:")
        for f in results:
            print(f"  {f.name}: {f.plan}")
    if args.json is not None:
        args.json.write_text(json.dumps({"migration_seconds": migrated, "filters": [
            {**asdict(f), "ratio": f.ratio} for f in results]}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
