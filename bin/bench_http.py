"""The HTTP rows of `make bench`: GET /me, refresh and mint under wrk against the API under gunicorn.

Server CPU per request is read from /proc for the gunicorn process tree (master and workers) over the
measured window, divided by the requests wrk completed: on a shared 2-core machine it is the least
noisy figure. Latency percentiles come from wrk itself.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests

CONNECTIONS = 32
WRK_THREADS = 2
WARMUP_SECONDS = 2
MEASURE_SECONDS = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# wrk's Lua hooks. `done` prints one JSON line the bench parses; every thread counts bad responses.
_COMMON = r"""
local threads = {}
failed = 0
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + (t:get("failed") or 0) end
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"errors":%d,"bad":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n', summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout +
    summary.errors.status, bad, latency:percentile(50), latency:percentile(99), latency.max))
end
"""

SCRIPTS = {
    # One access token for every request (the session row stays live).
    "me": r"""
local headers
function init(args) headers = {["Authorization"] = "Bearer " .. args[1]} end
function request() return wrk.format("GET", "/me", headers) end
function response(status) if status ~= 200 then failed = failed + 1 end end
""",
    # Real rotation chains: each thread holds refresh tokens; a 200 gives back the successor to present.
    "refresh": r"""
local pool = {}
local headers = {["Content-Type"] = "application/json"}
function init(args)
  local i = 0
  for line in io.lines(args[1]) do
    if i % tonumber(args[2]) == tid - 1 then table.insert(pool, line) end
    i = i + 1
  end
end
function request()
  local token = table.remove(pool)
  if token == nil then  -- a broken chain: this request is not a refresh (counted as failed)
    failed = failed + 1
    return wrk.format("GET", "/health")
  end
  return wrk.format("POST", "/auth/refresh", headers, '{"refreshToken":"' .. token .. '"}')
end
function response(status, _, body)
  local token = status == 200 and string.match(body, '"refreshToken"%s*:%s*"([^"]+)"')
  if token then table.insert(pool, token) elseif status ~= 200 then failed = failed + 1 end
end
""",
    # Passwordless sign-in (AUTH_ALLOW_PASSWORDLESS=true, as the seed stack mints): a new user each time.
    "mint": r"""
local headers = {["Content-Type"] = "application/json"}
local n = 0
function request()
  n = n + 1
  return wrk.format("POST", "/auth/token", headers, string.format('{"userId":"w%d-%d-%d"}', tid, os.time(), n))
end
function response(status) if status ~= 200 then failed = failed + 1 end end
""",
}


def require_wrk():
    """Fail with one clear line when wrk is not installed."""
    if not shutil.which("wrk"):
        raise SystemExit("make bench needs wrk for its HTTP rows: apt-get install -y wrk (Debian/Ubuntu)")


def tree_cpu_seconds(pid):
    """User + system CPU seconds of `pid` and all its descendants (reaped children included)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            parents.setdefault(int(stat[stat.rfind(b")") + 2 :].split()[1]), []).append(int(name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(parents.get(current, []))
        try:
            stat = Path(f"/proc/{current}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLOCK_TICKS


def _wrk(url, script, seconds, args):
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout=10s", "-s", script, url]
    done = subprocess.run([*command, "--", *args], capture_output=True, text=True, check=False)
    found = re.search(r"BENCHJSON (\{.*\})", done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    return json.loads(found.group(1))


def _mint(url, count):
    """`count` token pairs from passwordless sign-ins of fresh users."""
    stamp = time.time_ns()
    with requests.Session() as http:
        pairs = [
            http.post(f"{url}/auth/token", json={"userId": f"bench-{stamp}-{n}"}, timeout=10) for n in range(count)
        ]
    for pair in pairs:
        pair.raise_for_status()
    return [pair.json() for pair in pairs]


def _script_args(url, scenario, folder):
    if scenario == "me":
        return [_mint(url, 1)[0]["token"]]
    if scenario == "refresh":
        path = Path(folder) / "refresh-tokens.txt"
        # Two spares per thread: wrk validates the script with one request() it throws away.
        pairs = _mint(url, CONNECTIONS + 2 * WRK_THREADS)
        path.write_text("".join(pair["refreshToken"] + "\n" for pair in pairs))
        return [str(path), str(WRK_THREADS)]
    return []


def measure(service, scenario):
    """Warm up, then run `scenario` for MEASURE_SECONDS; return req/s, CPU ms per request and latencies."""
    with tempfile.TemporaryDirectory(prefix="oneshot-bench-wrk-") as folder:
        script = Path(folder) / f"{scenario}.lua"
        script.write_text(_COMMON + SCRIPTS[scenario])
        _wrk(service.url, script, WARMUP_SECONDS, _script_args(service.url, scenario, folder))
        args = _script_args(service.url, scenario, folder)
        cpu_before = tree_cpu_seconds(service.proc.pid)
        result = _wrk(service.url, script, MEASURE_SECONDS, args)
        cpu = tree_cpu_seconds(service.proc.pid) - cpu_before
    good = result["requests"] - result["bad"]
    return {
        "rps": good / (result["duration_us"] / 1e6),
        "cpu_ms": 1000 * cpu / max(good, 1),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "errors": result["errors"] + result["bad"],
    }
