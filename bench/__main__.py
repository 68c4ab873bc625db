"""`make bench`: gunicorn (2 workers) on SQLite, then on PostgreSQL, driven from loopback.

Writes BENCHMARKS.md. Settings: BENCH_DURATION (seconds per load run, default 10),
BENCH_PG_URL (server to create the bench database on, default postgresql://postgres@127.0.0.1:5432),
BENCH_PG_DB (its name, default portal_bench; created and dropped here).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import func, select

from bench.client import Browser
from bench.hashing import hash_for
from tests.live import ROOT, form_fields, gunicorn
from tests.querycount import count_statements

SECRET_KEY = "bench-secret-key-not-for-production"  # noqa: S105 (a throwaway database)
PASSWORD = "a-long-and-unusual-passphrase"  # noqa: S105
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
PG_DB = os.environ.get("BENCH_PG_DB", "bench_portal")
WORKERS = 2
CONNECTIONS = 8
INVITATIONS = int(os.environ.get("BENCH_INVITATIONS", "1000000"))
SAMPLES = 40
ROUNDS = 3
LANDING_SECONDS = max(2, DURATION * 3 // 10)
HASH_PROCESSES = 2  # the argon2 bound: as many hashing processes as gunicorn has workers
# Seeded databases are kept here between runs (keyed by schema head, row count and seeder).
CACHE = Path(os.environ.get("BENCH_CACHE", ROOT / "instance" / "bench-cache"))
# A name the seeder wrote once ("bulk <n>"): a search with a single match among them all.
# The default tenant's list itself (/admin/... redirects there): no redirect is measured.
LIST = "/t/default/admin/invitations/"
SEARCH = f"bulk {min(123456, INVITATIONS // 2)}"
# Rate limits stay on, as in production (their rules run on every wizard request), with counts
# no run can reach: every invitee comes from this machine's one address.
LIMITS = {name: "1000000000 per minute" for name in (
    "RATELIMIT_SIGNIN_ACCOUNT", "RATELIMIT_SIGNIN_ADDRESS", "RATELIMIT_INVITATION_LOOKUP",
    "RATELIMIT_WIZARD_SUBMIT", "RATELIMIT_API")}
TARGETS = {"enrollment_ratio": 0.9, "statements": 25, "landing_ratio": 0.5, "steady_mib": 100,
           "list_ms": 50}
LOAD_AT_START = os.getloadavg()  # other work on the box skews the figures; say how much there was


def say(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def ensure_wrk() -> str:
    """wrk from Debian's packages: the load generator, in C, so the client costs little CPU."""
    if not shutil.which("wrk"):
        say("installing wrk (apt-get)")
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False,  # noqa: S607
                       stdout=subprocess.DEVNULL)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)  # noqa: S607
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True,  # noqa: S607
                           stdout=subprocess.DEVNULL)
    return shutil.which("wrk")


def alternate(*urls: str) -> list[dict]:
    """Each URL in turn, ROUNDS times; the median of each figure, so that a burst of other work
    on the machine does not land on one URL only."""
    runs = [[wrk(url, LANDING_SECONDS) for url in urls] for _ in range(ROUNDS)]
    return [{key: statistics.median(run[i][key] for run in runs) for key in ("rps", "p50", "p99")}
            for i in range(len(urls))]


def wrk(url: str, seconds: int) -> dict:
    """Requests/s and latency percentiles for one URL."""
    out = subprocess.run(  # noqa: S603
        [shutil.which("wrk"), "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url],
        check=True, capture_output=True, text=True,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} error responses\n{out}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": ms("50"), "p99": ms("99")}


# -- databases ------------------------------------------------------------------------------

def pg_admin(sql: str) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def pg_version() -> str:
    with psycopg.connect(f"{PG_SERVER}/postgres") as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def schema_head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()


def seed_key() -> str:
    """What a seeded database depends on: the schema, the row count, this seeder."""
    seeder = (ROOT / "bench" / "seed.py").read_bytes()
    version = hashlib.sha256(seeder).hexdigest()[:8]
    return f"{schema_head()}_{INVITATIONS}_{version}".replace("-", "_").lower()


def build_seeded(url: str, instance: Path) -> None:
    """Migrate an empty database to head, seed the default flow, an admin and INVITATIONS
    invitations (bench.seed), and settle it as autovacuum would."""
    from flask_migrate import upgrade

    from portal import create_app
    from portal.auth import service as accounts
    from portal.extensions import bind_migrations, db
    from portal.flows.defaults import (
        ensure_default_authentication_flow,
        ensure_default_enrollment_flow,
    )

    from .seed import seed_invitations

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET_KEY,
                      "INSTANCE_PATH": str(instance)})
    with app.app_context():
        bind_migrations(app)
        upgrade(directory=str(ROOT / "migrations"))
        ensure_default_enrollment_flow()
        ensure_default_authentication_flow()
        accounts.create_user(username="admin", email="admin@example.com", password=PASSWORD,
                             superuser=True)
        seed_invitations(INVITATIONS)
        settle(app)
        db.session.remove()
        db.engine.dispose()


def seeded_sqlite(path: Path, instance: Path) -> None:
    """A copy of the cached seeded SQLite file (built on the first run for this schema)."""
    cached = CACHE / f"sqlite_{seed_key()}.db"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        for old in CACHE.glob("sqlite_*.db"):
            old.unlink()
        building = cached.with_suffix(".building")
        building.unlink(missing_ok=True)
        say(f"SQLite: seeding {INVITATIONS:,} invitations (cached for the next runs)")
        build_seeded(f"sqlite:///{building}", instance)
        with sqlite3.connect(building) as conn:  # one self-contained file to copy
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        building.rename(cached)
    shutil.copyfile(cached, path)


def seeded_postgresql(instance: Path) -> str:
    """A fresh copy (CREATE DATABASE ... TEMPLATE) of the cached seeded database."""
    template = f"bench_seed_{seed_key()}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'bench_seed_%'")]
    if template not in names:
        for old in names:
            pg_admin(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
        pg_admin(f'CREATE DATABASE "{template}_building"')
        say(f"PostgreSQL: seeding {INVITATIONS:,} invitations (cached for the next runs)")
        build_seeded(f"{PG_SERVER}/{template}_building", instance)
        pg_admin(f'ALTER DATABASE "{template}_building" RENAME TO "{template}"')
    pg_admin(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{PG_DB}" TEMPLATE "{template}"')
    return f"{PG_SERVER}/{PG_DB}"


def prepare(url: str, instance: Path):
    """The app on a seeded database, and a fresh invitation link to open."""
    from portal import create_app
    from portal.extensions import db
    from portal.invitations import service
    from portal.models import Flow, User

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET_KEY,
                      "INSTANCE_PATH": str(instance), "RATELIMIT_ENABLED": True, **LIMITS})
    with app.app_context():
        flow = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        admin = db.session.scalar(select(User).filter_by(username="admin"))
        landing = service.create_invitation(name="landing", flow=flow, expires_at=None,
                                            created_by=admin)
        link = service.invitation_link(landing, "")
    return app, link


def bulk_invite(app, count: int) -> float:
    """The admin's bulk invite as the product does it (check the pasted addresses, then one
    transaction: recipient-bound invitations, audit events, queued emails); seconds taken."""
    from portal.extensions import db
    from portal.invitations import bulk
    from portal.models import Flow, User, utcnow

    with app.app_context():
        flow = db.session.scalar(select(Flow))
        admin = db.session.scalar(select(User))
        started = time.perf_counter()
        rows = bulk.check(bulk.parse("\n".join(f"bulk-{n}@bench.example.org" for n in range(count))),
                          flow_id=flow.id, assignable=[])
        created = bulk.create(rows, base_url="http://127.0.0.1", email=True, created_by=admin,
                              ip="127.0.0.1", flow=flow, expires_at=utcnow() + timedelta(days=7))
        elapsed = time.perf_counter() - started
        assert len(created) == count, f"bulk invite created {len(created)} of {count}"
        return elapsed


def settle(app) -> None:
    """What autovacuum does soon after a big insert on PostgreSQL: fresh statistics, and the
    trigram index's pending list merged (a bulk load leaves 100,000 entries in it)."""
    from portal.extensions import db

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE invitations")


# -- measurements ---------------------------------------------------------------------------

def argon2_bound(seconds: float = 6.0) -> float:
    """Hashes/s with the portal's own hasher (argon2id, its parameters) in HASH_PROCESSES
    processes at once: no enrollment can go faster, since each one hashes once."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=hash_for, args=(seconds, queue))
                 for _ in range(HASH_PROCESSES)]
    for process in processes:
        process.start()
    counts = [queue.get(timeout=seconds + 60) for _ in processes]
    for process in processes:
        process.join()
    return sum(counts) / seconds


def enroll(base: str, link: str, number: int) -> None:
    """One invitee, a new browser: open the link, submit both wizard pages with the CSRF tokens
    read from them, and land signed in on the account page."""
    browser = Browser(base)
    page = browser.get(link)
    page = browser.post(page.path, {**form_fields(page.text), "username": f"invitee{number}",
                                    "password": PASSWORD, "password_repeat": PASSWORD})
    page = browser.post(page.path, {**form_fields(page.text), "name": f"Invitee {number}",
                                    "email": f"invitee{number}@example.com"})
    if page.path != "/account/" or page.status != 200:
        raise RuntimeError(f"enrollment failed: {page.status} {page.path} {page.text[:300]}")


def enrollments_per_second(base: str, link: str) -> tuple[float, int, float]:
    """Invitees walk the whole wizard (two pages, argon2id hashing, account written) for
    DURATION, CONNECTIONS at once: complete enrollments/s, how many, and the invitees' own CPU
    time per enrollment (ms; they share the cores with the server, so it is said)."""
    done = 0
    lock = threading.Lock()
    deadline = time.monotonic() + DURATION
    counter = iter(range(10**9))

    def person() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            enroll(base, link, next(counter))
            with lock:
                done += 1

    cpu = time.process_time()
    started = time.monotonic()
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        for future in [pool.submit(person) for _ in range(CONNECTIONS)]:
            future.result()
    elapsed = time.monotonic() - started
    return done / elapsed, done, (time.process_time() - cpu) * 1000 / max(done, 1)


def deep_key(app) -> int:
    """The id half-way down the newest-first list: the `after` of a page in its middle."""
    from portal.extensions import db
    from portal.models import Invitation

    with app.app_context():
        low, high = db.session.execute(select(func.min(Invitation.id), func.max(Invitation.id))).one()
        return (low + high) // 2


def admin_latencies(base: str, deep: int) -> dict:
    """p50 of the admin invitation list: first page, a deep (keyset) page, a search."""
    with httpx.Client(base_url=base, follow_redirects=True, timeout=30) as client:
        page = client.get("/auth/login")  # the sign-in flow: who, then the password
        page = client.post(str(page.url), data={**form_fields(page.text), "login": "admin"})
        client.post(str(page.url), data={**form_fields(page.text), "password": PASSWORD})
        results = {}
        for label, path in (("first page", LIST),
                            ("deep page", f"{LIST}?after={deep}"),
                            ("search", f"{LIST}?q={SEARCH.replace(' ', '+')}")):
            timings = []
            for _ in range(SAMPLES):
                started = time.perf_counter()
                response = client.get(path)
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200 and "<table>" in response.text, path
            results[label] = statistics.median(timings)
        return results


STEPS = ("landing (link)", "page 1 (GET)", "page 1 (POST)", "page 2 (GET)", "page 2 (POST, final)")
LANDS_ON = "account page (GET, where it lands)"  # not part of the statement budget
ROUNDS_IN_PROCESS = 3  # enrollments profiled; the last is shown (the first pays for imports)


def enrollment_steps(app, link: str) -> list[dict]:
    """Each request of one enrollment, in process (Flask test client): its SQL statements and
    its time without the argon2 hash (timed apart), for the profile in BENCHMARKS.md; warm (the
    last of ROUNDS_IN_PROCESS enrollments), with the account page it lands on."""
    from portal.security import passwords

    hashing = []
    real_hash = passwords.hash_password

    def timed_hash(password):
        started = time.perf_counter()
        try:
            return real_hash(password)
        finally:
            hashing.append(time.perf_counter() - started)

    flow_url = "/if/flow/default-enrollment-flow/"

    def step(steps, label, send):
        hashing.clear()
        with count_statements(app) as sent:
            started = time.perf_counter()
            response = send()
            elapsed = time.perf_counter() - started
        steps.append({"step": label, "statements": len(sent),
                      "ms": (elapsed - sum(hashing)) * 1000, "hash_ms": sum(hashing) * 1000})
        assert response.status_code in (200, 302), (label, response.status_code)
        return response

    from portal.flows.stages import prompt as prompt_stage

    def one(number: int) -> list[dict]:
        client, steps = app.test_client(), []
        step(steps, STEPS[0], lambda: client.get(link))
        first = step(steps, STEPS[1], lambda: client.get(flow_url)).get_data(as_text=True)
        step(steps, STEPS[2], lambda: client.post(flow_url, data={
            **form_fields(first), "username": f"profiled{number}", "password": PASSWORD,
            "password_repeat": PASSWORD}))
        second = step(steps, STEPS[3], lambda: client.get(flow_url)).get_data(as_text=True)
        final = step(steps, STEPS[4], lambda: client.post(flow_url, data={
            **form_fields(second), "name": "Pro Filed", "email": f"profiled{number}@example.com"}))
        assert final.headers["Location"].endswith("/account/"), final.headers
        step(steps, LANDS_ON, lambda: client.get("/account/"))
        return steps

    prompt_stage.hash_password = timed_hash
    try:
        return [one(number) for number in range(ROUNDS_IN_PROCESS)][-1]
    finally:
        prompt_stage.hash_password = real_hash


def statements(app, link: str) -> dict:
    """SQL statements per request, in process, with a SQLAlchemy event."""
    client = app.test_client()
    with count_statements(app) as landing:
        assert client.get(link).status_code == 302
    admin = app.test_client()
    page = admin.get("/auth/login", follow_redirects=True)
    for answer in ({"login": "admin"}, {"password": PASSWORD}):
        page = admin.post(page.request.path, data={**form_fields(page.get_data(as_text=True)),
                                                   **answer}, follow_redirects=True)
    admin.get(f"{LIST}?q=warm-up")  # the first search asks once for SQLite's FTS5
    counts = {"landing": len(landing)}
    for label, path in (("list, first page", LIST),
                        ("list, deep page", f"{LIST}?after={deep_key(app)}"),
                        ("list, search", f"{LIST}?q={SEARCH.replace(' ', '+')}")):
        with count_statements(app) as sent:
            assert admin.get(path).status_code == 200
        counts[label] = len(sent)
    return counts


def worker_cpu(master_pid: int) -> tuple[float, float]:
    """CPU seconds the master's workers have used: in all their threads, and in their main
    threads only (argon2 hashes in threads of its own, 4 lanes, while the main thread waits:
    so the main threads' time is everything a worker does but hash)."""
    tick = os.sysconf("SC_CLK_TCK")

    def seconds(stat: str) -> float:
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    total = sum(seconds(Path(f"/proc/{pid}/stat").read_text()) for pid in children)
    main = sum(seconds(Path(f"/proc/{pid}/task/{pid}/stat").read_text()) for pid in children)
    return total, main


def worker_memory_mb(master_pid: int) -> dict:
    """Of the master's worker processes: the largest resident set now (VmRSS: steady, after
    warm-up and outside a hash) and the largest peak (VmHWM: includes argon2's 64 MiB)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    steady, peak = [], []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        steady.append(int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024)
        peak.append(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024)
    return {"steady": max(steady), "peak": max(peak)}


def run_backend(name: str, url: str, instance: Path) -> dict:
    say(f"{name}: preparing {url.split('@')[-1]}")
    app, link = prepare(url, instance)
    result: dict = {"steps": enrollment_steps(app, link)}
    with gunicorn(url, workers=WORKERS, secret_key=SECRET_KEY, instance_path=instance,
                  extra_env={"RATELIMIT_ENABLED": "true", **LIMITS},
                  log_path=instance / f"gunicorn-{name}.log") as (base, master):
        say(f"{name}: landing page and ceiling, alternately, {ROUNDS} x {LANDING_SECONDS}s each")
        result["ceiling"], result["landing"] = alternate(base + "/livez", base + link)
        say(f"{name}: complete enrollments, {DURATION}s")
        for warm in range(2 * WORKERS):  # a worker's first sign-up pays for imports: not counted
            enroll(base, link, 10**8 + warm)
        before = worker_cpu(master)
        result["enrollments"], count, result["client_ms"] = enrollments_per_second(base, link)
        after = worker_cpu(master)
        result["worker_ms"] = [(a - b) * 1000 / max(count, 1)
                               for a, b in zip(after, before, strict=True)]
        time.sleep(1)  # the last hashes end; then the steady resident set
        say(f"{name}: admin list p50 over {SAMPLES} requests each")
        result["admin"] = admin_latencies(base, deep_key(app))
        result["memory"] = worker_memory_mb(master)
        say(f"{name}: creating 1,000 invitations in bulk")
        result["bulk_1000"] = bulk_invite(app, 1000)
        result["statements"] = statements(app, link)
    from portal.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return result


# -- report ---------------------------------------------------------------------------------

def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    memory_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    import gunicorn as gunicorn_pkg

    return {
        "CPU": model.group(1).strip() if model else platform.processor(),
        "cores (nproc)": str(os.cpu_count()),
        "memory": f"{memory_kb / 1024 / 1024:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": pg_version(),
        "gunicorn": f"{gunicorn_pkg.__version__}, {WORKERS} sync workers",
        "load generator": f"wrk 4.1 (2 threads, {CONNECTIONS} connections) for the landing, "
                          f"bench/client.py ({CONNECTIONS} threads) for enrollments; same "
                          "machine, loopback",
        "load average at the start (other work on the box)":
            "{:.1f} / {:.1f} / {:.1f} (1 / 5 / 15 min)".format(*LOAD_AT_START),
    }


def report(results: dict, bound: float, seconds: float) -> str:
    backends = list(results)

    def row(label, fn, target=""):
        return f"| {label} | " + " | ".join(fn(results[b]) for b in backends) + f" | {target} |"

    def landing_ratio(r):
        return r["landing"]["rps"] / r["ceiling"]["rps"]

    def enrollment_ratio(r):
        return r["enrollments"] / bound

    def total_statements(r):
        return sum(step["statements"] for step in r["steps"][:len(STEPS)])

    def met(ok: bool) -> str:
        return "✓" if ok else "✗ missed"

    def latency(measured):
        return f"{measured['p50']:.1f} / {measured['p99']:.1f}"

    t = TARGETS
    checks = {name: {
        "enrollments": enrollment_ratio(r) >= t["enrollment_ratio"],
        "statements": total_statements(r) <= t["statements"],
        "landing": landing_ratio(r) >= t["landing_ratio"],
        "memory": r["memory"]["steady"] <= t["steady_mib"],
        "list": all(r["admin"][k] < t["list_ms"] for k in ("first page", "deep page", "search")),
    } for name, r in results.items()}
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {seconds:.0f} s. "
        "Re-run it to measure your own machine; the figures below are from one run.",
        "",
        *([f"**The machine was busy during this run** (load average {LOAD_AT_START[0]:.1f} on "
           f"{os.cpu_count()} cores at the start, from other work): the absolute figures and "
           "even the ratios are not representative. Re-run `make bench` on a quiet machine.", ""]
          if LOAD_AT_START[0] > (os.cpu_count() or 1) else []),
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine().items()),
        "",
        "## Results",
        "",
        f"The argon2 bound, measured in this run: **{bound:.1f} hashes/s** ({HASH_PROCESSES} "
        "processes hashing with the portal's own hasher, argon2id t=3, m=64 MiB, p=4). Every "
        "enrollment hashes its password once, so no enrollment rate can exceed it.",
        "",
        "| measure | " + " | ".join(backends) + " | target |",
        "|---|" + "---|" * len(backends) + "---|",
        row("complete enrollments / s (argon2id included)", lambda r: f"{r['enrollments']:.1f}"),
        row("enrollments ÷ argon2 bound", lambda r: f"{enrollment_ratio(r):.2f}",
            f"≥ {t['enrollment_ratio']}"),
        row("CPU per enrollment: the workers' argon2 threads, ms",
            lambda r: f"{r['worker_ms'][0] - r['worker_ms'][1]:.0f}"),
        row("CPU per enrollment: the workers' main threads (all but the hash), ms",
            lambda r: f"{r['worker_ms'][1]:.0f}"),
        row("CPU per enrollment: the bench's invitees (load generator), ms",
            lambda r: f"{r['client_ms']:.1f}"),
        row("SQL statements, whole enrollment (5 requests)", lambda r: str(total_statements(r)),
            f"≤ {t['statements']}"),
        row("ceiling `/livez`: req/s", lambda r: f"{r['ceiling']['rps']:,.0f}"),
        row("ceiling `/livez`: p50 / p99 ms", lambda r: latency(r["ceiling"])),
        row("landing `/if/flow/<slug>/?itoken=…`: req/s", lambda r: f"{r['landing']['rps']:,.0f}"),
        row("landing: p50 / p99 ms", lambda r: latency(r["landing"])),
        row("landing ÷ ceiling", lambda r: f"{landing_ratio(r):.2f}", f"≥ {t['landing_ratio']}"),
        row("worker memory, steady (VmRSS after the load, outside a hash), MiB",
            lambda r: f"{r['memory']['steady']:.0f}", f"≤ {t['steady_mib']}"),
        row("worker memory, peak (VmHWM, during a hash), MiB",
            lambda r: f"{r['memory']['peak']:.0f}"),
        row(f"admin list, {INVITATIONS:,} invitations, first page p50 ms",
            lambda r: f"{r['admin']['first page']:.1f}", f"< {t['list_ms']}"),
        row("admin list, deep page (keyset, half-way) p50 ms",
            lambda r: f"{r['admin']['deep page']:.1f}", f"< {t['list_ms']}"),
        row(f"admin list, search “{SEARCH}” p50 ms", lambda r: f"{r['admin']['search']:.1f}",
            f"< {t['list_ms']}"),
        row("SQL statements: admin list first page / deep page / search",
            lambda r: " / ".join(str(r["statements"][k]) for k in
                                 ("list, first page", "list, deep page", "list, search")),
            "constant"),
        row("create 1,000 invitations in bulk: s", lambda r: f"{r['bulk_1000']:.2f}"),
        "",
        "Targets: " + "; ".join(
            f"{name}: " + ", ".join(f"{k} {met(ok)}" for k, ok in c.items())
            for name, c in checks.items()) + ".",
        "",
        "## One enrollment, request by request",
        "",
        f"In process (Flask test client, no HTTP), one enrollment of the default flow, warm (the "
        f"last of {ROUNDS_IN_PROCESS}: the first pays for imports and template compiles): its "
        "SQL statements and its time without the password hash (the hash, timed apart, is the "
        "argon2 bound's cost), then the account page it lands on.",
        "",
        "| request | " + " | ".join(f"{b}: statements | {b}: ms (hash ms)" for b in backends) + " |",
        "|---|" + "---|---|" * len(backends),
    ]
    for index, label in enumerate(STEPS):
        cells = []
        for b in backends:
            step = results[b]["steps"][index]
            hashed = f" (+{step['hash_ms']:.0f})" if step["hash_ms"] else ""
            cells += [str(step["statements"]), f"{step['ms']:.1f}{hashed}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| **whole enrollment** | " + " | ".join(
        f"**{total_statements(results[b])}** | "
        f"{sum(s['ms'] for s in results[b]['steps'][:len(STEPS)]):.1f}" for b in backends) + " |")
    lines.append(f"| {LANDS_ON} | " + " | ".join(
        f"{results[b]['steps'][-1]['statements']} | {results[b]['steps'][-1]['ms']:.1f}"
        for b in backends) + " |")
    lines += ["", (ROOT / "bench" / "EXPLAINED.md").read_text().strip(), ""]
    lines += [
        "## Method",
        "",
        f"- Each backend gets a copy of a database migrated from empty to head and seeded with "
        f"{INVITATIONS:,} invitations (`bench/seed.py`: INSERT … SELECT over a generated series, "
        "the table's indexes built after the load). The seeded database is cached between runs "
        f"(`{CACHE.relative_to(ROOT) if CACHE.is_relative_to(ROOT) else CACHE}`, and a template "
        "database `bench_seed_…` on PostgreSQL), keyed by the schema's head revision, the row "
        "count and the seeder; a changed schema seeds again. On PostgreSQL the seed is followed by "
        "`VACUUM ANALYZE invitations`, as autovacuum would do.",
        f"- gunicorn runs `gunicorn.conf.py` with {WORKERS} sync workers and the access log "
        "off; the rate limits are on, as in production (in-memory counts), with numbers no run "
        "reaches (every invitee comes from one address). The in-process profile uses the same.",
        f"- The argon2 bound: {HASH_PROCESSES} processes call `portal.security.passwords."
        "hash_password` for 6 s each; the sum of their hashes per second.",
        f"- Landing page and ceiling: wrk, alternately, {ROUNDS} rounds of {LANDING_SECONDS} s "
        "each; the table shows the medians. The landing request opens a real invitation link "
        "(one indexed query, nothing written) and redirects to the wizard. The ceiling is "
        "`/livez` of the same app: Flask, the security headers, no database, no session.",
        f"- Enrollments: {CONNECTIONS} concurrent invitees for {DURATION} s (Python threads with "
        "`bench/client.py`, a lean HTTP client: about 4 ms of CPU per enrollment where httpx "
        "took about 43), each a new browser: open the link, submit both wizard pages with CSRF "
        "tokens read from the pages, and land signed in on the account page (its page is "
        "fetched too). CPU per enrollment: the workers' `/proc/<pid>/stat` (all threads) and "
        "`/proc/<pid>/task/<pid>/stat` (the main thread, which waits while argon2's threads "
        "hash) over the run, and the invitees' `time.process_time()`, divided by the "
        "enrollments completed.",
        "- Memory: `/proc/<worker>/status` of each gunicorn worker after the enrollments and a "
        "second's rest: VmRSS (steady) and VmHWM (peak), the largest worker's.",
        f"- Admin list: the median of {SAMPLES} sequential requests by a signed-in admin for "
        "page 1, the page after the invitation half-way down (`?after=<id>`), and a search "
        f"for “{SEARCH}” (one match among them all).",
        "- Statements: counted in process with a SQLAlchemy `before_cursor_execute` listener; "
        "`tests/test_query_counts.py` holds the enrollment's budget and the list's constant "
        "count in the test suite.",
        "- The load generator and the server share the machine's cores, so absolute figures are "
        "lower than on a dedicated server; the ratios are what the targets are about.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ensure_wrk()
    started = time.monotonic()
    say(f"argon2 bound: {HASH_PROCESSES} processes hashing for 6 s")
    bound = argon2_bound()
    say(f"argon2 bound: {bound:.1f} hashes/s")
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        instance = Path(scratch)
        seeded_sqlite(instance / "bench.db", instance)
        results["SQLite"] = run_backend("SQLite", f"sqlite:///{instance / 'bench.db'}", instance)
        try:
            url = seeded_postgresql(instance)
            results["PostgreSQL"] = run_backend("PostgreSQL", url, instance)
        finally:
            pg_admin(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    text = report(results, bound, time.monotonic() - started)
    (ROOT / "BENCHMARKS.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
