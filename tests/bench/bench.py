#!/usr/bin/env python3
"""tests/bench/bench.py - zmbatch benchmarks (issue 6), driven by `make bench` (tests/bench/run).

    python3 tests/bench/bench.py [--quick] [--out DIR] [makespan stream cost rss db token first throttled
                                                        provision ...]

Every benchmark starts its own simulated servers (tests/zsim/zsim.py, HTTPS on 127.0.0.1 with a
throw-away CA), writes a native job file, runs bin/zmbatch as a child process and measures it:
wall time (monotonic, around the whole process), CPU (user+sys of the child from wait4) and peak
RSS (ru_maxrss of the child).  The simulators' CPU is not counted (separate processes).
Each figure is printed as it is measured and collected into DIR/results.json and DIR/results.md
(default DIR: build/release/bench).

Environment: ZMBATCH_BIN (default bin/zmbatch), DBSCALE_BIN (default build/release/tests/bench/dbscale),
PYTHON (interpreter for the simulators, default this one).
"""
import json
import os
import random
import shutil
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ZMBATCH = os.environ.get("ZMBATCH_BIN") or os.path.join(TOP, "bin", "zmbatch")
DBSCALE = os.environ.get("DBSCALE_BIN") or os.path.join(TOP, "build", "release", "tests", "bench", "dbscale")
PYTHON = os.environ.get("PYTHON") or sys.executable
ZSIM = os.environ.get("ZSIM") or os.path.join(TOP, "tests", "zsim", "zsim.py")
MB = 1000 * 1000

RESULTS = []   # (benchmark, figure, value, unit/target note)


def say(msg):
    print(msg, flush=True)


def figure(bench, name, value, note=""):
    RESULTS.append({"bench": bench, "figure": name, "value": value, "note": note})
    say("  %-58s %s %s" % (name, value, ("(" + note + ")") if note else ""))


# ---------------------------------------------------------------------------
# simulators

class Pki:
    def __init__(self, d):
        self.ca = os.path.join(d, "ca.pem")
        self.cert = os.path.join(d, "server.pem")
        self.key = os.path.join(d, "server.key")
        q = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "2", "-subj", "/CN=zmbatch bench CA",
                        "-keyout", os.path.join(d, "ca.key"), "-out", self.ca], **q)
        subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", "/CN=127.0.0.1", "-keyout", self.key, "-out", os.path.join(d, "s.csr")], **q)
        with open(os.path.join(d, "san.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        subprocess.run(["openssl", "x509", "-req", "-in", os.path.join(d, "s.csr"), "-CA", self.ca,
                        "-CAkey", os.path.join(d, "ca.key"), "-CAcreateserial", "-days", "2",
                        "-extfile", os.path.join(d, "san.ext"), "-out", self.cert], **q)
        self.ctx = ssl.create_default_context(cafile=self.ca)


class Sim:
    def __init__(self, d, name, cfg, pki, lifetime=1800):
        self.name = name
        self.pki = pki
        cfg = dict(cfg, name=name)
        path = os.path.join(d, name + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        portf = os.path.join(d, name + ".port")
        self.log = open(os.path.join(d, name + ".log"), "w")
        self.proc = subprocess.Popen([PYTHON, ZSIM, "--config", path, "--cert", pki.cert, "--key", pki.key,
                                      "--port", "0", "--port-file", portf, "--quiet", "--die-with-parent",
                                      "--max-lifetime", str(lifetime)],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        t = time.monotonic()
        while not os.path.exists(portf):
            if self.proc.poll() is not None or time.monotonic() - t > 60:
                raise RuntimeError("simulator %s did not start (see %s.log)" % (name, name))
            time.sleep(0.05)
        with open(portf) as f:
            self.port = int(f.read())

    def url(self, p):
        return "https://127.0.0.1:%d%s" % (self.port, p)

    def stats(self, digests=False):
        q = "/zsim/stats?log=0" + ("" if digests else "&digests=0")
        with urllib.request.urlopen(self.url(q), context=self.pki.ctx, timeout=120) as r:
            return json.load(r)

    def stats_full(self):
        """stats with the request log (no digests)."""
        with urllib.request.urlopen(self.url("/zsim/stats?digests=0"), context=self.pki.ctx, timeout=300) as r:
            return json.load(r)

    def post(self, p, obj):
        req = urllib.request.Request(self.url(p), data=json.dumps(obj).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.pki.ctx, timeout=60) as r:
            return json.load(r)

    def cpu(self):
        """user+sys CPU seconds of the simulator so far (from /proc)."""
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                v = f.read().rsplit(")", 1)[1].split()
            return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return float("nan")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def accounts_cfg(sizes, item=64 * 1024):
    """zsim account objects: user0001.. with explicit item size lists summing to each size."""
    out = []
    for i, s in enumerate(sizes):
        a = {"name": "user%04d@example.com" % (i + 1)}
        if s > 0:
            k, r = divmod(s, item)
            a["sizes"] = [item] * k + ([r] if r else [])
        out.append(a)
    return out


def heavy_tailed(n, total, largest, seed=6, empty_frac=0.1):
    """n sizes: empty_frac empty, the rest Pareto(alpha 1.2); the maximum is set to `largest`
    and the rest scaled so that the sum is `total`.  Positions are shuffled (seeded)."""
    rnd = random.Random(seed)
    ne = int(n * empty_frac)
    raw = [1.0 / (rnd.random() ** (1 / 1.2)) for _ in range(n - ne)]
    raw.sort(reverse=True)
    rest = raw[1:]
    scale = (total - largest) / sum(rest)
    sizes = [largest] + [max(2000, int(x * scale)) for x in rest]
    sizes = [min(s, largest) for s in sizes] + [0] * ne
    rnd.shuffle(sizes)
    return sizes


class Env:
    """One benchmark scenario: two simulators + a job directory."""

    def __init__(self, root, pki, tag, sizes, bandwidth=0, dst_bandwidth=None, lifetime=43200,
                 item=64 * 1024, knobs=None):
        self.dir = os.path.join(root, tag)
        os.makedirs(self.dir)
        self.pki = pki
        self.sizes = sizes
        src = {"token_lifetime": lifetime, "knobs": dict(knobs or {}, bandwidth=bandwidth),
               "domains": [{"name": "example.com", "accounts": accounts_cfg(sizes, item)}]}
        dst = {"token_lifetime": lifetime,
               "knobs": dict(knobs or {}, bandwidth=bandwidth if dst_bandwidth is None else dst_bandwidth),
               "domains": [{"name": "example.net",
                            "accounts": [{"name": "user%04d@example.net" % (i + 1)} for i in range(len(sizes))]}]}
        self.src = Sim(self.dir, "src", src, pki)
        self.dst = None
        try:
            self.dst = Sim(self.dir, "dst", dst, pki)
        except Exception:
            self.src.stop()
            raise
        with open(os.path.join(self.dir, "pw"), "w") as f:
            f.write("test123\n")
        os.chmod(os.path.join(self.dir, "pw"), 0o600)
        self.n = 0

    def job(self, threads, transfer="stream", order="largest-first", margin=1800, extra="", srv_extra=""):
        self.n += 1
        d = os.path.join(self.dir, "job%d" % self.n)
        os.makedirs(d)
        cfg = os.path.join(d, "job.cfg")
        srv = ('host = "127.0.0.1"; port = %d; admin_user = "admin@example.com"; '
               'admin_password_file = "%s"; ca_file = "%s"; ' + srv_extra.replace("%", "%%"))
        pw = os.path.join(self.dir, "pw")
        with open(cfg, "w") as f:
            f.write('job = "bench";\n'
                    'source = { %s };\n' % (srv % (self.src.port, pw, self.pki.ca)) +
                    'target = { %s };\n' % (srv % (self.dst.port, pw, self.pki.ca)) +
                    'migration = {\n  domains = [ "example.com" ];\n'
                    '  domain_map = [ "example.com=example.net" ];\n'
                    '  threads = %d;\n  transfer = "%s";\n  order = "%s";\n'
                    '  resolve = "replace";\n'
                    '  working_dir = "%s/work"; success_dir = "%s/success"; failed_dir = "%s/failed";\n'
                    '%s};\n' % (threads, transfer, order, d, d, d, extra) +
                    'token = { refresh_margin = %s; };\n' % margin +
                    'state = { db = "%s/state.db"; };\n' % d +
                    'log = { dir = "%s/log"; level = "info"; };\n' % d)
        return cfg, os.path.join(d, "state.db")

    def stop(self):
        self.src.stop()
        if self.dst:
            self.dst.stop()


def run_zmbatch(args, timeout=600):
    """Run bin/zmbatch; returns dict(rc, wall, cpu, user, sys, maxrss_kb)."""
    t = time.monotonic()
    p = subprocess.Popen([ZMBATCH] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    # the outputs are small (--quiet); read to EOF, then reap with wait4 for the rusage
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": p.returncode, "wall": wall, "user": ru.ru_utime, "sys": ru.ru_stime,
            "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss, "out": out.decode(errors="replace")}


def run_job(env, cfg, what):
    r = run_zmbatch(["run", "-c", cfg, "--quiet"])
    if r["rc"] != 0:
        say(r["out"][-3000:])
        raise RuntimeError("%s: zmbatch run exited %d" % (what, r["rc"]))
    return r


def db_span(db):
    """transfer phase from the state DB: first claim .. last finish (wall clock)."""
    c = sqlite3.connect(db)
    try:
        a, b, n = c.execute("SELECT MIN(started_at), MAX(finished_at), COUNT(*) FROM accounts "
                            "WHERE state = 'done'").fetchone()
        return (b - a) if a and b else 0.0, n
    finally:
        c.close()


def export_bytes(sim):
    """bytes of the last export of each account (what the bandwidth applies to)."""
    st = sim.stats()
    return {a: v["bytes"] for a, v in st.get("exports", {}).items()}


# ---------------------------------------------------------------------------
# 1. makespan ratio

NOCAP = "max_requests_per_second = 0;"


def bench_makespan(root, pki, quick):
    say("== 1. makespan / lower bound (stream mode, heavy-tailed mix, bandwidth-limited)")
    n = 100 if quick else 200
    total = (40 if quick else 72) * MB
    largest = total // 10
    sizes = heavy_tailed(n, total, largest)
    target_s = 6.0 if quick else 12.0      # lower bound of each run, by choice of the bandwidth
    say("  mix: %d accounts, %d empty, total %.1f MB, largest %.1f MB, median %.0f kB"
        % (n, sizes.count(0), sum(sizes) / MB, max(sizes) / MB, sorted(sizes)[n // 2] / 1000))
    rows = []
    # BENCH_MAKESPAN_THREADS="1" re-measures one thread count alone
    tlist = [int(x) for x in os.environ.get("BENCH_MAKESPAN_THREADS", "1 4 16").split()]
    for threads in tlist:
        # per-connection bandwidth chosen so that the bound is ~target_s for every thread count
        bw = int(max(total / threads, largest) / target_s)
        for order in ("largest-first", "as-listed"):
            env = Env(root, pki, "makespan-%d-%s" % (threads, order), sizes, bandwidth=bw)
            try:
                # the runner's scheduling, not a server's rate policy: no request-rate cap
                # (with the default 25/s the 4 requests per account of a verified transfer
                # would be the bound: benchmark 7 measures the cap)
                cfg, db = env.job(threads, "stream", order, srv_extra=NOCAP)
                r = run_job(env, cfg, "makespan")
                eb = export_bytes(env.src)
                T, L = sum(eb.values()), max(eb.values())
                bound = max(T / (threads * bw), L / bw)
                span, ndone = db_span(db)
                rows.append((threads, order, bw, bound, span, r["wall"]))
                figure("makespan", "threads %2d %-13s wall/bound" % (threads, order),
                       "%.3f" % (r["wall"] / bound),
                       "bw %.0f kB/s/conn, bound %.2f s, process wall %.2f s" % (bw / 1000, bound, r["wall"]))
                figure("makespan", "threads %2d %-13s transfer-phase/bound" % (threads, order),
                       "%.3f" % (span / bound),
                       "first claim..last done %.2f s; start+login+discovery+exit %.2f s"
                       % (span, r["wall"] - span))
            finally:
                env.stop()
    return rows


# ---------------------------------------------------------------------------
# 2. stream vs spool

def bench_stream(root, pki, quick):
    say("== 2. stream vs spool (equal export and import bandwidth)")
    n = 40
    total = (24 if quick else 48) * MB
    sizes = heavy_tailed(n, total, total // 8, seed=11)
    threads = 4
    bw = int(total / threads / (5.0 if quick else 8.0))
    res = {}
    for transfer in ("spool", "stream"):
        env = Env(root, pki, "xfer-" + transfer, sizes, bandwidth=bw)
        try:
            cfg, db = env.job(threads, transfer, "largest-first")
            r = run_job(env, cfg, transfer)
            res[transfer] = r["wall"]
            figure("stream", "%s wall (4 threads, %.0f MB, %.0f kB/s each way)" % (transfer, total / MB, bw / 1000),
                   "%.2f s" % r["wall"])
        finally:
            env.stop()
    figure("stream", "stream/spool", "%.3f" % (res["stream"] / res["spool"]), "target <= 0.6")


# ---------------------------------------------------------------------------
# 3. runner cost

def bench_cost(root, pki, quick):
    say("== 3a. runner CPU per 1,000 small accounts (no bandwidth limit)")
    n = 1000
    rnd = random.Random(3)
    sizes = [rnd.choice((0, 2000, 5000, 20000)) for _ in range(n)]
    for transfer in ("stream", "spool"):
        env = Env(root, pki, "cost-small-" + transfer, sizes, item=8192)
        try:
            c0 = env.src.cpu() + env.dst.cpu()
            cfg, db = env.job(4, transfer, srv_extra=NOCAP)
            r = run_job(env, cfg, "small accounts")
            simcpu = env.src.cpu() + env.dst.cpu() - c0
            figure("cost", "%s: CPU per 1,000 small accounts (4 threads)" % transfer,
                   "%.3f s" % (r["cpu"] * 1000 / n),
                   "user %.2f + sys %.2f; wall %.1f s; simulators used %.1f CPU s"
                   % (r["user"], r["sys"], r["wall"], simcpu))
            # round trips per 1,000 accounts, each side: every request the simulator saw
            # (not its own /zsim/ control calls), and the SOAP ones by name
            trips = []
            for side, sim in (("source", env.src), ("target", env.dst)):
                st = sim.stats_full()
                total = sum(1 for e in st.get("requests", []) if not e["path"].startswith("/zsim/"))
                soap = sorted(st.get("soap", {}).items(), key=lambda kv: -kv[1])
                trips.append("%s %.0f (%s)" % (side, total * 1000 / n, ", ".join(
                    "%s %.0f" % (k.replace("Request", ""), v * 1000 / n) for k, v in soap if v)))
            figure("cost", "%s: round trips per 1,000 small accounts" % transfer,
                   "%s" % " / ".join(t.split(" (")[0] for t in trips), "; ".join(trips))
        finally:
            env.stop()

    say("== 3b. runner CPU per GB moved (no bandwidth limit)")
    per = (128 if quick else 256) * MB
    sizes = [per] * 4
    for transfer in ("stream", "spool"):
        env = Env(root, pki, "cost-gb-" + transfer, sizes, item=1024 * 1024)
        try:
            c0 = env.src.cpu() + env.dst.cpu()
            cfg, db = env.job(4, transfer)
            r = run_job(env, cfg, "GB")
            moved = sum(export_bytes(env.src).values())
            simcpu = env.src.cpu() + env.dst.cpu() - c0
            figure("cost", "%s: CPU per GB moved (4 x %d MB, 4 threads)" % (transfer, per // MB),
                   "%.3f s" % (r["cpu"] / (moved / 1e9)),
                   "user %.2f + sys %.2f for %.2f GB; wall %.1f s = %.0f MB/s; simulators %.1f CPU s"
                   % (r["user"], r["sys"], moved / 1e9, r["wall"], moved / MB / r["wall"], simcpu))
        finally:
            env.stop()


def bench_rss(root, pki, quick):
    say("== 3c. peak RSS of zmbatch, one big mailbox + 15 small ones, 16 threads")
    rss_big(root, pki, quick)
    say("== 3d. peak RSS, worst case for the stream buffers: 16 mailboxes in flight, target slower than source")
    per = 8 * MB if quick else 24 * MB
    sizes = [per] * 16
    dbw = int(per / (5.0 if quick else 12.0))
    env = Env(root, pki, "rss-slowdst", sizes, bandwidth=0, dst_bandwidth=dbw, item=1024 * 1024)
    try:
        cfg, db = env.job(16, "stream")
        r = run_job(env, cfg, "rss slow target")
        figure("rss", "stream: peak RSS, 16 x %d MB in flight, import %.1f MB/s/conn, export unlimited"
               % (per // MB, dbw / MB), "%.1f MB" % (r["maxrss_kb"] / 1024),
               "buffer_size default 1 MiB per stream; wall %.1f s; CPU %.2f s" % (r["wall"], r["cpu"]))
    finally:
        env.stop()


def rss_big(root, pki, quick):
    bigs = [256 * MB] if quick else [256 * MB, 2000 * MB]
    for big in bigs:
        sizes = [big] + [1 * MB] * 15
        for transfer in ("stream", "spool"):
            if quick and transfer == "spool":
                continue
            env = Env(root, pki, "rss-%d-%s" % (big // MB, transfer), sizes, item=1024 * 1024)
            try:
                cfg, db = env.job(16, transfer)
                r = run_job(env, cfg, "rss")
                moved = sum(export_bytes(env.src).values())
                figure("rss", "%s: peak RSS, %d MB mailbox, 16 threads" % (transfer, big // MB),
                       "%.1f MB" % (r["maxrss_kb"] / 1024),
                       "%.2f GB moved in %.1f s; CPU %.2f s" % (moved / 1e9, r["wall"], r["cpu"]))
            finally:
                env.stop()


# ---------------------------------------------------------------------------
# 4. state DB scale

def bench_db(root, pki, quick):
    say("== 4. state DB with 100,000 accounts")
    d = os.path.join(root, "db")
    os.makedirs(d)
    db = os.path.join(d, "state.db")
    p = subprocess.run([DBSCALE, db, "100000", "32", "15" if quick else "60"],
                       stdout=subprocess.PIPE, universal_newlines=True, check=True)
    v = dict(l.split("=", 1) for l in p.stdout.split())
    figure("db", "discovery upsert of 100,000 accounts (one transaction)", "%.2f s" % float(v["upsert_s"]),
           "%s rows/s" % v["upsert_per_s"])
    figure("db", "--shard-by server listing of 100,000 accounts recorded",
           "%.2f s" % float(v["deal_first_s"]), "%.2f s on a later run" % float(v["deal_again_s"]))
    figure("db", "claims/s, 32 threads, own connections (largest-first)", "%s claims/s" % v["claims_per_s"],
           "%s claims in %s s, max claim latency %s ms, %s errors"
           % (v["claims"], v["claim_s"], v["claim_max_latency_ms"], v["claim_errors"]))
    for what, args in (("status", ["status", "--state", db]),
                       ("report --format text", ["report", "--state", db, "--format", "text", "--output", os.path.join(d, "r.txt")]),
                       ("report --format json", ["report", "--state", db, "--format", "json", "--output", os.path.join(d, "r.json")]),
                       ("report --format csv", ["report", "--state", db, "--format", "csv", "--output", os.path.join(d, "r.csv")]),
                       ("report --format prom", ["report", "--state", db, "--format", "prom", "--output", os.path.join(d, "r.prom")])):
        best = None
        for _ in range(3):
            r = run_zmbatch(args)
            if r["rc"] != 0:
                raise RuntimeError("zmbatch %s exited %d: %s" % (what, r["rc"], r["out"][-500:]))
            best = r if best is None or r["wall"] < best["wall"] else best
        figure("db", "zmbatch %s, 100,000 accounts" % what, "%.3f s" % best["wall"],
               "best of 3; CPU %.2f s, RSS %.0f MB" % (best["cpu"], best["maxrss_kb"] / 1024))


# ---------------------------------------------------------------------------
# 5. token refresh

def bench_token(root, pki, quick):
    say("== 5. token refresh: AuthRequests per server vs run time / (lifetime - margin)")
    lifetime, margin = 4.0, 1.0
    n = 120
    total = 24 * MB
    sizes = heavy_tailed(n, total, total // 8, seed=5)
    threads = 4
    bw = int(total / threads / (8.0 if quick else 16.0))
    env = Env(root, pki, "token", sizes, bandwidth=bw, lifetime=lifetime)
    try:
        cfg, db = env.job(threads, "stream", margin=int(margin))
        r = run_job(env, cfg, "token")
        expect = 1 + r["wall"] / (lifetime - margin)
        for sim in (env.src, env.dst):
            a = sim.stats()["auth_requests"]
            faults = sim.stats().get("soap_faults", {})
            figure("token", "%s AuthRequests (lifetime %.0f s, margin %.0f s, run %.1f s)"
                   % (sim.name, lifetime, margin, r["wall"]),
                   "%d" % a["total"],
                   "expected <= 1 + run/(lifetime-margin) = %.1f; failed %d; faults %s"
                   % (expect, a.get("failed", 0), json.dumps(faults)))
    finally:
        env.stop()


# ---------------------------------------------------------------------------
# 6. throttled run: the servers' DoS filter at 30/s, zmbatch capped under it

def request_times(sim):
    """start times (unix s) of the SOAP and REST requests the simulator saw, and its 429s."""
    with urllib.request.urlopen(sim.url("/zsim/stats?digests=0"), context=sim.pki.ctx, timeout=120) as r:
        st = json.load(r)
    at = sorted(e["at"] for e in st.get("requests", []) if not e["path"].startswith("/zsim/"))
    return at, st.get("dos", {}).get("rejected", 0)


def bench_throttled(root, pki, quick):
    limit = 30                                          # Zimbra's zimbraHttpDosFilterMaxRequestsPerSec
    cap = float(os.environ.get("BENCH_THROTTLE_CAP", "28"))
    say("== 6. throttled run: DoS filter %d/s on both servers (429 above it), "
        "max_requests_per_second = %g" % (limit, cap))
    n = 150 if quick else 300
    rnd = random.Random(17)
    sizes = [rnd.choice((2000, 5000, 12000)) for _ in range(n)]
    env = Env(root, pki, "throttled", sizes, item=8192, knobs={"dos_max_requests_per_sec": limit})
    try:
        cfg, db = env.job(8, "spool", srv_extra="max_requests_per_second = %g;" % cap)
        r = run_zmbatch(["run", "-c", cfg, "--quiet"])
        c = sqlite3.connect(db)
        try:
            done, failed, maxatt = c.execute(
                "SELECT sum(state = 'done'), sum(state = 'failed'), max(attempts) FROM accounts").fetchone()
            thr = dict(c.execute("SELECT role, throttled FROM servers").fetchall())
        finally:
            c.close()
        figure("throttled", "%d small accounts, 8 threads: exit status, done / failed, most attempts"
               % n, "%d, %d / %d, %d" % (r["rc"], done, failed, maxatt), "wall %.1f s" % r["wall"])
        for sim, role in ((env.src, "source"), (env.dst, "target")):
            at, rejected = request_times(sim)
            span = at[-1] - at[0] if len(at) > 1 else 0
            rate = (len(at) - 1) / span if span > 0 else 0
            # the busiest 10 s: the rate the cap holds while the workers keep it saturated
            best, j = 0, 0
            for i in range(len(at)):
                while at[i] - at[j] > 10.0:
                    j += 1
                best = max(best, i - j)
            peak = best / 10.0 if span >= 10 else rate
            figure("throttled", "%s: requests/s achieved (whole run / busiest 10 s), cap %g"
                   % (role, cap), "%.1f / %.1f" % (rate, peak),
                   "%d requests in %.1f s; busiest 10 s at %.0f %% of the cap; 429 from the DoS filter: %d "
                   "(zmbatch counted %d)" % (len(at), span, 100 * peak / cap, rejected, thr.get(role, -1)))
    finally:
        env.stop()


# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# 6. time to first transfer

def first_transfer(env, cfg, db):
    """Start `zmbatch run`, wait until its first account is claimed (state DB), stop it (SIGTERM:
    graceful, exit 75), and return (seconds from the start of the process to the source's first
    export request, the source's and the target's SOAP requests before it by type)."""
    t0 = time.time()
    p = subprocess.Popen([ZMBATCH, "run", "-c", cfg, "--quiet"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    seen = False
    deadline = time.monotonic() + 900
    while not seen and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        try:   # a WAL reader: never blocks the run, and the simulators are not asked
            c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=0.1)
            try:
                seen = c.execute("SELECT count(*) FROM accounts WHERE started_at IS NOT NULL").fetchone()[0] > 0
            finally:
                c.close()
        except sqlite3.Error:
            pass
    if p.poll() is None:
        p.terminate()
    err = p.communicate(timeout=600)[1].decode(errors="replace")
    if not seen or p.returncode not in (0, 75):
        say(err[-3000:])
        raise RuntimeError("first transfer: zmbatch exited %s before any account started" % p.returncode)

    def soap_before(st, t_first):
        out = {}
        for r in st["requests"]:
            if r.get("soap") and r["at"] < t_first:
                out[r["soap"]] = out.get(r["soap"], 0) + 1
        return out
    src = env.src.stats_full()
    exports = [r["at"] for r in src["requests"] if r["method"] == "GET" and r["path"].startswith("/service/home/")]
    if not exports:
        raise RuntimeError("first transfer: no export request in the source's log")
    first = min(exports)
    return first - t0, soap_before(src, first), soap_before(env.dst.stats_full(), first)


def bench_first(root, pki, quick):
    n = 2000 if quick else 10000
    say("== 6. time to first transfer, %d accounts in one domain (start of zmbatch run -> first export "
        "request at the source)" % n)
    rnd = random.Random(13)
    sizes = [rnd.choice((0, 2000, 5000, 20000)) for _ in range(n)]
    res = {}
    for mode in ("GetQuotaUsage", "GetMailbox each"):
        env = Env(root, pki, "first-" + mode.split()[0], sizes, item=8192)
        try:
            if mode != "GetQuotaUsage":   # the per-account path: a source without GetQuotaUsage
                env.src.post("/zsim/knobs", {"quota_refuse": "service.UNKNOWN_DOCUMENT"})
            cfg, db = env.job(4, "stream")
            secs, src_soap, dst_soap = first_transfer(env, cfg, db)
            res[mode] = secs
            figure("first", "%s: time to first transfer, %d accounts" % (mode, n), "%.2f s" % secs,
                   "source SOAP before it: %s; target: %s"
                   % (", ".join("%s %d" % kv for kv in sorted(src_soap.items())),
                      ", ".join("%s %d" % kv for kv in sorted(dst_soap.items()))))
        finally:
            env.stop()
    figure("first", "GetMailbox each / GetQuotaUsage", "%.1f x" % (res["GetMailbox each"] / res["GetQuotaUsage"]))


# ---------------------------------------------------------------------------
# provision: creating N accounts on an empty target (issue 15)

PROV_CHANGES = ("CreateAccountRequest", "ModifyAccountRequest", "AddAccountAliasRequest",
                "CreateSignatureRequest", "CreateIdentityRequest", "CreateDomainRequest",
                "CreateCosRequest", "ModifyCosRequest", "ModifyDomainRequest")


def prov_accounts(n):
    """n source accounts with typical attributes: names, a few preferences; every 10th
    (from the 4th) an alias, every 10th (from the 8th) a signature."""
    out = []
    for i in range(1, n + 1):
        a = {"name": "user%05d@example.com" % i,
             "attrs": {"displayName": "User %05d" % i, "givenName": "User", "sn": "%05d" % i,
                       "zimbraPrefTimeZoneId": "Europe/Berlin", "zimbraPrefLocale": "de",
                       "zimbraPrefHtmlEditorDefaultFontSize": "12pt",
                       "zimbraPrefMailPollingInterval": "300s"}}
        if i % 10 == 4:
            a["aliases"] = ["alias%05d@example.com" % i]
        if i % 10 == 8:
            a["signatures"] = [{"name": "work", "html": "<b>User %05d</b>" % i}]
        out.append(a)
    return out


def per_account(calls, n):
    """'Req x.xx' per request type; a request sent a few times in all as its total ('Auth 1 in all')."""
    return ", ".join(("%s %.2f" % (k.replace("Request", ""), v / n)) if v * 100 >= n
                     else "%s %d in all" % (k.replace("Request", ""), v) for k, v in sorted(calls.items()))


def soap_delta(after, before):
    a, b = after.get("soap", {}), before.get("soap", {})
    return {k: a[k] - b.get(k, 0) for k in a if a[k] - b.get(k, 0)}


def bench_provision(root, pki, quick):
    n = 1000 if quick else 10000
    say("== provision: %d accounts to an empty target (copy_password off: no LDAP)" % n)
    d = os.path.join(root, "provision")
    os.makedirs(d)
    src = Sim(d, "src", {"token_lifetime": 43200,
                         "domains": [{"name": "example.com", "accounts": prov_accounts(n)}]}, pki)
    try:
        # the target has the mapped domain and nothing else (no account)
        dst = Sim(d, "dst", {"token_lifetime": 43200, "domains": [{"name": "example.net"}]}, pki)
    except Exception:
        src.stop()
        raise
    try:
        pw = os.path.join(d, "pw")
        with open(pw, "w") as f:
            f.write("test123\n")
        os.chmod(pw, 0o600)
        srv = ('host = "127.0.0.1"; port = %d; admin_user = "admin@example.com"; '
               'admin_password_file = "' + pw + '"; ca_file = "' + pki.ca + '"; ' + NOCAP)
        cfg = os.path.join(d, "job.cfg")
        with open(cfg, "w") as f:
            f.write('job = "bench-provision";\n'
                    'source = { %s };\n' % (srv % src.port) +
                    'target = { %s };\n' % (srv % dst.port) +
                    'migration = {\n  domains = [ "example.com" ];\n'
                    '  domain_map = [ "example.com=example.net" ];\n'
                    '  working_dir = "%s/work";\n};\n' % d +
                    'state = { db = "%s/state.db"; };\n' % d +
                    'log = { dir = "%s/log"; level = "info"; };\n' % d +
                    'stages = ( { name = "provision"; type = "provision"; copy_password = false; } );\n')
        s0, t0 = src.stats(), dst.stats()
        r = run_zmbatch(["run", "-c", cfg, "--quiet"], timeout=3600)
        if r["rc"] != 0:
            say(r["out"][-3000:])
            raise RuntimeError("provision: zmbatch run exited %d" % r["rc"])
        s1, t1 = src.stats(), dst.stats()
        sd, td = soap_delta(s1, s0), soap_delta(t1, t0)
        c = sqlite3.connect(os.path.join(d, "state.db"))
        try:
            rows = dict(c.execute("SELECT coalesce(outcome, state), count(*) FROM provision_objects "
                                  "WHERE kind = 'account' GROUP BY 1").fetchall())
        finally:
            c.close()
        if rows.get("created") != n:
            raise RuntimeError("provision: %d accounts created, expected %d (%s)" % (rows.get("created", 0), n, rows))
        figure("provision", "first run: wall time, %d accounts" % n, "%.1f s" % r["wall"],
               "%.0f accounts/s" % (n / r["wall"]))
        figure("provision", "first run: zmbatch CPU (user+sys)", "%.2f s" % r["cpu"],
               "%.2f ms/account" % (1000 * r["cpu"] / n))
        figure("provision", "first run: source SOAP calls per account", "%.2f" % (sum(sd.values()) / n),
               per_account(sd, n))
        figure("provision", "first run: target SOAP calls per account", "%.2f" % (sum(td.values()) / n),
               per_account(td, n))
        r2 = run_zmbatch(["run", "-c", cfg, "--quiet", "--stage", "provision"], timeout=3600)
        if r2["rc"] != 0:
            say(r2["out"][-3000:])
            raise RuntimeError("provision rerun: zmbatch run exited %d" % r2["rc"])
        s2, t2 = src.stats(), dst.stats()
        sd2, td2 = soap_delta(s2, s1), soap_delta(t2, t1)
        changes = sum(td2.get(k, 0) for k in PROV_CHANGES)
        figure("provision", "rerun: wall time", "%.1f s" % r2["wall"], "CPU %.2f s" % r2["cpu"])
        figure("provision", "rerun: SOAP calls per account (source + target)",
               "%.2f" % ((sum(sd2.values()) + sum(td2.values())) / n),
               "source: %s; target: %s" % (
                   ", ".join("%s %d" % (k.replace("Request", ""), v) for k, v in sorted(sd2.items())),
                   ", ".join("%s %d" % (k.replace("Request", ""), v) for k, v in sorted(td2.items()))))
        figure("provision", "rerun: create/modify calls on the target", changes, "must be 0")
        if changes:
            raise RuntimeError("provision rerun changed the target: %s" % td2)
    finally:
        src.stop()
        dst.stop()


BENCHES = {"makespan": bench_makespan, "stream": bench_stream, "cost": bench_cost, "rss": bench_rss,
           "db": bench_db, "token": bench_token, "first": bench_first,
           "throttled": bench_throttled, "provision": bench_provision}


def machine():
    out = {}
    try:
        lc = subprocess.run(["lscpu"], stdout=subprocess.PIPE, universal_newlines=True).stdout
        for l in lc.splitlines():
            k, _, v = l.partition(":")
            if k.strip() in ("Model name", "CPU(s)"):
                out[k.strip()] = v.strip()
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        out["MemTotal"] = f.readline().split(":")[1].strip()
    out["kernel"] = os.uname().release
    out["python"] = sys.version.split()[0]
    return out


def write_results(outdir, wall):
    os.makedirs(outdir, exist_ok=True)
    m = machine()
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"machine": m, "seconds": wall, "results": RESULTS}, f, indent=1)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("Machine: %s, %s CPUs, %s RAM, Linux %s; generated %s in %.0f s\n\n"
                % (m.get("Model name", "?"), m.get("CPU(s)", "?"), m.get("MemTotal", "?"), m["kernel"],
                   time.strftime("%Y-%m-%d %H:%M"), wall))
        f.write("| benchmark | figure | value | notes |\n|---|---|---|---|\n")
        for r in RESULTS:
            f.write("| %s | %s | %s | %s |\n" % (r["bench"], r["figure"], r["value"], r["note"]))


def main():
    args = sys.argv[1:]
    quick = "--quick" in args
    outdir = os.path.join(TOP, "build", "release", "bench")
    if "--out" in args:
        outdir = args[args.index("--out") + 1]
        del args[args.index("--out"):args.index("--out") + 2]
    names = [a for a in args if not a.startswith("--")] or list(BENCHES)
    for nme in names:
        if nme not in BENCHES:
            sys.exit("bench: unknown benchmark '%s' (known: %s)" % (nme, " ".join(BENCHES)))
    for b in (ZMBATCH, DBSCALE):
        if not os.access(b, os.X_OK):
            sys.exit("bench: %s is missing (make bin/zmbatch build/release/tests/bench/dbscale)" % b)
    root = tempfile.mkdtemp(prefix="zmbatch-bench.")
    t0 = time.monotonic()
    try:
        pki = Pki(root)
        for nme in names:
            t = time.monotonic()
            BENCHES[nme](root, pki, quick)
            say("  (%s took %.0f s)" % (nme, time.monotonic() - t))
    finally:
        if os.environ.get("KEEP"):
            say("bench: kept " + root)
        else:
            shutil.rmtree(root, ignore_errors=True)
        wall = time.monotonic() - t0
        write_results(outdir, wall)
        say("bench: %d figures in %.0f s -> %s/results.md" % (len(RESULTS), wall, outdir))


if __name__ == "__main__":
    main()
