"""Benchmark of the run pipeline with a model agent (`make bench`): 50 concurrent runs, each streaming
from a Chat Completions server at 200 tokens a second, executed by one Orchestrator worker process.

Prints what that process sustains (tokens in, events stored and announced, per second) and what it
costs (server CPU per run, per stored event and per model token, from /proc). The model is the
tests' fake server (tests/support/fake_model.py) in this process, on loopback.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import fake_model  # noqa: E402
from tests.support.accounts import sign_up  # noqa: E402
from tests.support.databases import admin_execute, with_database  # noqa: E402
from tests.support.processes import worker_pids  # noqa: E402
from tests.support.services import ROOT, Service, free_port, service_env  # noqa: E402

WAITING_RUNS = 200
RUNS = 50
TOKENS = 400  # per run
TOKENS_PER_SECOND = 200
COMMAND = "bin/bench (make bench)"


def cpu_seconds(pid):
    """User + system CPU time of a process so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(database_url, flush_ms):
    model = fake_model.FakeModel()
    env = service_env(
        database_url,
        AGENT="openai",
        AGENT_BASE_URL=model.url,
        AGENT_MODEL=fake_model.MODEL,
        AGENT_TOOLS="",
        AGENT_FLUSH_MS=flush_ms,
        WEB_CONCURRENCY=1,
        RUN_CONCURRENCY=RUNS,
        DB_POOL_SIZE=20,
    )
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    service = Service("orchestrator", env, log).start()
    try:
        (worker,) = worker_pids(service.proc.pid)
        user = sign_up(env)
        prompts = [f"bench run {n}" for n in range(RUNS)]
        text = "tok " * TOKENS
        for prompt in prompts:
            model.script(prompt, fake_model.slow(text, chunks=TOKENS, delay=1 / TOKENS_PER_SECOND))
        cpu_before, started = cpu_seconds(worker), time.monotonic()
        ids = []
        for prompt in prompts:
            response = requests.post(
                f"{service.url}/runs", json={"prompt": prompt}, headers=user["headers"], timeout=10
            )
            ids.append(response.json()["id"])
        with psycopg.connect(database_url) as conn:
            while True:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')) AS done,"
                    " count(*) FILTER (WHERE status = 'completed') AS ok FROM runs WHERE id = ANY(%s::uuid[])",
                    (ids,),
                ).fetchone()
                if row[0] == RUNS or time.monotonic() - started > 120:
                    break
                time.sleep(0.05)
            wall, cpu = time.monotonic() - started, cpu_seconds(worker) - cpu_before
            events = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE type = 'message') FROM run_events"
                " WHERE run_id = ANY(%s::uuid[])",
                (ids,),
            ).fetchone()
            durations = [
                r[0]
                for r in conn.execute(
                    "SELECT extract(epoch FROM updated_at - started_at) FROM runs WHERE id = ANY(%s::uuid[])", (ids,)
                )
            ]
        return {
            "flush_ms": flush_ms,
            "completed": row[1],
            "wall": wall,
            "run_p50": statistics.median(durations),
            "run_max": max(durations),
            "events": events[0],
            "messages": events[1],
            "cpu": cpu,
        }
    finally:
        service.stop()
        model.close()
        log.unlink(missing_ok=True)


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bench_waiting(database_url):
    """What runs waiting for a person cost: rows, events, connections in use, worker memory."""
    env = service_env(database_url, WEB_CONCURRENCY=1, RUN_STEP_DELAY_MS=0)
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    service = Service("orchestrator", env, log).start()
    try:
        (worker,) = worker_pids(service.proc.pid)
        user = sign_up(env)
        requests.get(f"{service.url}/health", timeout=10)
        before = rss_kb(worker)
        for n in range(WAITING_RUNS):
            body = {"prompt": f"Send the report {n}, once I approve", "steps": 1}
            requests.post(f"{service.url}/runs", json=body, headers=user["headers"], timeout=10).raise_for_status()
        with psycopg.connect(database_url) as conn:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                waiting = conn.execute("SELECT count(*) FROM runs WHERE status = 'waiting'").fetchone()[0]
                if waiting == WAITING_RUNS:
                    break
                time.sleep(0.1)
            time.sleep(1)
            leased = conn.execute("SELECT count(*) FROM runs WHERE lease_owner IS NOT NULL").fetchone()[0]
            events = conn.execute("SELECT count(*) FROM run_events").fetchone()[0]
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state <> 'idle' AND application_name <> 'oneshot-listener'"
            ).fetchone()[0]
        metrics = requests.get(f"{service.url}/metrics", timeout=10).text
        running = next(line for line in metrics.splitlines() if line.startswith("oneshot_runs_running "))
        return {
            "waiting": waiting,
            "leased": leased,
            "events_per_run": events / WAITING_RUNS,
            "busy": busy,
            "running": running.split()[1],
            "rss_delta_kb": rss_kb(worker) - before,
        }
    finally:
        service.stop()
        log.unlink(missing_ok=True)


def print_waiting(w):
    print()
    print(f"Runs waiting for approval — command: {COMMAND}; {WAITING_RUNS} runs of the simulated agent, one worker")
    print(
        f"waiting {w['waiting']}/{WAITING_RUNS} | leased rows {w['leased']} | "
        f"events per run {w['events_per_run']:.0f} | "
        f"connections in use {w['busy']} | oneshot_runs_running {w['running']} | "
        f"worker RSS {w['rss_delta_kb'] / 1024:+.1f} MB after all of them"
    )


def print_table(results):
    nominal = TOKENS / TOKENS_PER_SECOND
    print()
    print(
        f"Model runs on one Orchestrator worker — command: {COMMAND}; {RUNS} concurrent runs, each streaming {TOKENS} "
        f"tokens at {TOKENS_PER_SECOND}/s (nominal {nominal:.1f} s) from a Chat Completions server on this machine"
    )
    print(
        f"{'flush ms':>8} | {'done':>5} | {'run p50 s':>9} | {'run max s':>9} | {'tokens/s':>8} | {'events':>6} | "
        f"{'events/s':>8} | {'CPU ms/run':>10} | {'CPU ms/event':>12} | {'CPU µs/token':>12}"
    )
    for r in results:
        tokens = RUNS * TOKENS
        print(
            f"{r['flush_ms']:>8} | {r['completed']:>2}/{RUNS} | {r['run_p50']:>9.2f} | {r['run_max']:>9.2f} | "
            f"{tokens / r['wall']:>8.0f} | {r['events']:>6} | {r['events'] / r['wall']:>8.0f} | "
            f"{r['cpu'] * 1000 / RUNS:>10.1f} | {r['cpu'] * 1000 / r['events']:>12.2f} | "
            f"{r['cpu'] * 1e6 / tokens:>12.1f}"
        )


def main():
    datadir, port = tempfile.mkdtemp(prefix="oneshot-bench-pg-"), free_port()
    subprocess.run([ROOT / "bin" / "pg-local", "start", datadir, str(port)], check=True)
    try:
        server = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        results = []
        for flush_ms in (50, 200):
            name = f"bench_agents_{flush_ms}"
            admin_execute(server, f'CREATE DATABASE "{name}"')
            url = with_database(server, name)
            subprocess.run(
                [sys.executable, "-m", "common.migrate"], env={**os.environ, "DATABASE_URL": url}, check=True
            )
            results.append(bench(url, flush_ms))
        print_table(results)
        admin_execute(server, 'CREATE DATABASE "bench_waiting"')
        url = with_database(server, "bench_waiting")
        subprocess.run([sys.executable, "-m", "common.migrate"], env={**os.environ, "DATABASE_URL": url}, check=True)
        print_waiting(bench_waiting(url))
    finally:
        subprocess.run([ROOT / "bin" / "pg-local", "stop", datadir], check=False)
        shutil.rmtree(datadir, ignore_errors=True)


if __name__ == "__main__":
    main()
