"""Benchmarks printed as tables (`make bench`): sign-in bursts and /health latency meanwhile.

Starts a throwaway PostgreSQL cluster and the API under gunicorn (gevent), like the tests do.
"""

import concurrent.futures
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import ROOT, Service, admin_execute, free_port, service_env, with_database  # noqa: E402

PASSWORD = "correct horse battery"


def ms(seconds):
    return f"{seconds * 1000:8.1f}"


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def health_latencies(url, stop, out):
    """Probe /health back to back until `stop` is set."""
    with requests.Session() as http:
        while not stop.is_set():
            started = time.perf_counter()
            http.get(f"{url}/health", timeout=10).raise_for_status()
            out.append(time.perf_counter() - started)


def login_burst(url, users):
    """Sign in every user at once; return (wall time, per-login latencies)."""
    barrier = threading.Barrier(len(users))

    def sign_in(user_id):
        barrier.wait()
        started = time.perf_counter()
        response = requests.post(f"{url}/auth/token", json={"userId": user_id, "password": PASSWORD}, timeout=30)
        assert response.status_code == 200, response.text
        return time.perf_counter() - started

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(users)) as pool:
        latencies = list(pool.map(sign_in, users))
    return time.perf_counter() - started, latencies


def bench_logins(database_url, workers, burst=20):
    env = service_env(database_url, WEB_CONCURRENCY=workers, LOGIN_MAX_FAILURES_PER_ADDRESS=10_000)
    service = Service("api", env, Path(tempfile.mkstemp(suffix=".log")[1])).start()
    try:
        users = [f"bench-{workers}-{n}" for n in range(burst)]
        for user_id in users:
            requests.post(f"{service.url}/auth/register", json={"userId": user_id, "password": PASSWORD}, timeout=10)
        idle = []
        for _ in range(200):
            started = time.perf_counter()
            requests.get(f"{service.url}/health", timeout=10)
            idle.append(time.perf_counter() - started)
        during, stop = [], threading.Event()
        prober = threading.Thread(target=health_latencies, args=(service.url, stop, during))
        prober.start()
        wall, logins = login_burst(service.url, users)
        stop.set()
        prober.join()
        return wall, logins, idle, during
    finally:
        service.stop()


def main():
    datadir = tempfile.mkdtemp(prefix="oneshot-bench-pg-")
    port = free_port()
    subprocess.run([ROOT / "bin" / "pg-local", "start", datadir, str(port)], check=True)
    server = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        print("20 concurrent sign-ins (argon2id m=19MiB t=2) while /health is probed back to back")
        print(
            f"{'workers':>7} | {'burst ms':>8} | {'login p50':>9} | {'login max':>9} | "
            f"{'health idle p50':>15} | {'health p50':>10} | {'health p99':>10} | {'health max':>10} | probes"
        )
        for workers in (1, 2):
            name = f"bench_{workers}"
            admin_execute(server, f'CREATE DATABASE "{name}"')
            wall, logins, idle, during = bench_logins(with_database(server, name), workers)
            print(
                f"{workers:>7} | {ms(wall)} | {ms(statistics.median(logins)):>9} | {ms(max(logins)):>9} | "
                f"{ms(statistics.median(idle)):>15} | {ms(statistics.median(during)):>10} | "
                f"{ms(percentile(during, 0.99)):>10} | {ms(max(during)):>10} | {len(during)}"
            )
    finally:
        subprocess.run([ROOT / "bin" / "pg-local", "stop", datadir], check=False)
        shutil.rmtree(datadir, ignore_errors=True)


if __name__ == "__main__":
    main()
