#!/usr/bin/env python3
"""
mutate.py - `make mutate`: check that the test suites catch known breaks.

Each mutation in tests/mutate/mutations.txt is a realistic break of one
guarantee of the README (no flock on the run lock, a SOAP fault taken for
success, ...): an exact text in one file under src/ and its replacement,
plus the test suite(s) that must catch it.  For each selected mutation this
script

  1. copies the tree (the files git tracks or would track, as they are in
     the work tree) and build/<variant>/ to a new temporary directory, with
     their mtimes, so that only what the mutation touches is rebuilt;
  2. applies the mutation: the text must occur exactly once in the file,
     else the mutation itself is broken (the code moved on: update it), and
     that counts as a failure;
  3. builds the binaries the tests spawn ($MUTATE_BUILD) and the suites'
     runners there (a mutant that does not build is a failure too: fix the
     mutation, a compile error proves nothing);
  4. runs the suites, in order, with the environment of `make check`
     ($MUTATE_ENV: ZMBATCH_BIN, ZMBATCH_HOOKS_BIN, BUILD_DIR, with paths under
     the copy; PYTHON; CK_DEFAULT_TIMEOUT=60), each narrowed by the variables
     on its line (CK_RUN_CASE=tcase for Check, FAULTS_ONLY=test for
     check_e2e_faults) to keep it short.  The mutation is caught as soon as
     one suite fails; it is a failure when all of them pass.

Before that, the unmutated tree is built (the same targets).  A suite line
that fails on a mutant is then run once on the unmutated tree too (the
"baseline", at most once per line): a suite that fails without any mutation
would "catch" everything, so its failure is not counted as a catch.

It prints a table `mutation | suite | caught | seconds` and a last line
`N passed, M failed` (passed = caught), and exits 1 if anything failed.
Logs go to tests/out/mutate/ (NAME.build.log, NAME.SUITE.log,
baseline.SUITE.log); the temporary trees are removed.

Usage (from the top of the tree; `make mutate` builds the tree first):
  make mutate                          every mutation
  make mutate MUTATIONS="no-flock soap-fault-success"   a subset
  python3 tests/mutate/mutate.py --list                 names and descriptions
  python3 tests/mutate/mutate.py --check                each find text occurs once
  python3 tests/mutate/mutate.py [NAME...]

Environment:
  MUTATE_BASELINE=0   no baseline runs (faster, less honest)
  MUTATE_KEEP=1       keep the temporary trees (their paths are printed)
  MUTATE_TIMEOUT=S    kill a suite run after S seconds (default 1800);
                      a suite killed so counts as caught ("timed out")
  MUTATE_JOBS=N       make -jN for the mutant builds (default 2)
  VARIANT, PYTHON     as for make (default release, python3)
  MUTATE_BUILD        what to build besides the runners (the Makefile passes
                      the binaries `make check` uses; default bin/zmbatch)
  MUTATE_ENV          VAR=path ... relative to the tree, as `make check` sets
                      them (the Makefile passes them; default ZMBATCH_BIN and
                      BUILD_DIR)

File format of mutations.txt: blocks of `key: value` lines, '#' comments.
  mutation: NAME        starts a block (letters, digits, '-')
  desc: ONE LINE        what guarantee it breaks
  file: src/FILE.c      the file to change
  suite: RUNNER [VAR=VALUE ...]   a suite that must catch it (one or more)
  find:                 then the exact text, one line per '|'-prefixed line
  |<text>                 (the '|' is removed; tabs and blank lines kept)
  replace:              then the replacement, the same way (may be empty)
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MUTATIONS_FILE = os.path.join(ROOT, "tests", "mutate", "mutations.txt")
LOGDIR = os.path.join(ROOT, "tests", "out", "mutate")
VARIANT = os.environ.get("VARIANT") or "release"
BDIR = "build/" + VARIANT
BIN = "bin/zmbatch" if VARIANT == "release" else BDIR + "/zmbatch"
PYTHON = os.environ.get("PYTHON") or "python3"
BUILD = (os.environ.get("MUTATE_BUILD") or BIN).split()
TREE_ENV = dict(w.split("=", 1) for w in
                (os.environ.get("MUTATE_ENV") or "ZMBATCH_BIN=%s BUILD_DIR=%s" % (BIN, BDIR)).split())
TIMEOUT = float(os.environ.get("MUTATE_TIMEOUT") or 1800)
JOBS = os.environ.get("MUTATE_JOBS") or "2"


class Mutation:
    def __init__(self, name, line):
        self.name = name
        self.line = line
        self.desc = ""
        self.file = None
        self.suites = []      # [(runner, {VAR: VALUE}), ...]
        self.find = None
        self.replace = None


def suite_label(suite):
    runner, env = suite
    return " ".join([runner] + ["%s=%s" % kv for kv in sorted(env.items())])


def parse(path):
    muts = []
    cur = None
    block = None    # "find" / "replace" while reading '|' lines
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for no, raw in enumerate(lines, 1):
        if block and raw.startswith("|"):
            getattr(cur, block).append(raw[1:])
            continue
        block = None
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        key, sep, val = s.partition(":")
        val = val.strip()
        if not sep:
            sys.exit("%s:%d: expected 'key: value', got %r" % (path, no, raw))
        if key == "mutation":
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", val):
                sys.exit("%s:%d: bad mutation name %r" % (path, no, val))
            if any(m.name == val for m in muts):
                sys.exit("%s:%d: mutation %s defined twice" % (path, no, val))
            cur = Mutation(val, no)
            muts.append(cur)
            continue
        if cur is None:
            sys.exit("%s:%d: '%s:' before the first 'mutation:'" % (path, no, key))
        if key == "desc":
            cur.desc = val
        elif key == "file":
            cur.file = val
        elif key == "suite":
            words = val.split()
            if not words or not words[0].startswith("check_"):
                sys.exit("%s:%d: suite must name a tests/check_* runner" % (path, no))
            env = {}
            for w in words[1:]:
                k, eq, v = w.partition("=")
                if not eq:
                    sys.exit("%s:%d: expected VAR=VALUE, got %r" % (path, no, w))
                env[k] = v
            cur.suites.append((words[0], env))
        elif key in ("find", "replace"):
            if val:
                sys.exit("%s:%d: put the text on '|' lines after '%s:'" % (path, no, key))
            setattr(cur, key, [])
            block = key
        else:
            sys.exit("%s:%d: unknown key %r" % (path, no, key))
    for m in muts:
        where = "%s:%d: mutation %s" % (path, m.line, m.name)
        if not m.file or not m.suites or m.find is None or m.replace is None or not m.desc:
            sys.exit("%s: needs desc, file, suite, find and replace" % where)
        m.find = "\n".join(m.find)
        m.replace = "\n".join(m.replace)
        if not m.find.strip() or m.find == m.replace:
            sys.exit("%s: empty find text, or replace equal to find" % where)
    return muts


def tree_files():
    """Files git tracks or would track (not ignored), as in the work tree."""
    try:
        out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "-c", "-o",
                              "--exclude-standard"], check=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        names = sorted(set(n for n in out.decode().split("\0") if n))
    except (OSError, subprocess.CalledProcessError):
        names = []
        for d, dirs, files in os.walk(ROOT):
            rel = os.path.relpath(d, ROOT)
            dirs[:] = [x for x in dirs if not (rel == "." and x in (".git", "build"))
                       and not (rel == "tests" and x == "out")]
            names += [os.path.normpath(os.path.join(rel, x)) for x in files]
    return [n for n in names if os.path.isfile(os.path.join(ROOT, n))
            or os.path.islink(os.path.join(ROOT, n))]


def copy_tree(dst):
    for n in tree_files():
        d = os.path.join(dst, n)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, n), d, follow_symlinks=False)
    if os.path.isdir(os.path.join(ROOT, BDIR)):
        shutil.copytree(os.path.join(ROOT, BDIR), os.path.join(dst, BDIR), symlinks=True,
                        dirs_exist_ok=True)
    for b in BUILD:
        if os.path.isfile(os.path.join(ROOT, b)) and not os.path.exists(os.path.join(dst, b)):
            os.makedirs(os.path.dirname(os.path.join(dst, b)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, b), os.path.join(dst, b))


def apply(m, tree, dry=False):
    """Apply m in tree; return None or why it cannot be applied."""
    path = os.path.join(tree, m.file)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        return "cannot read %s: %s" % (m.file, e.strerror)
    n = text.count(m.find)
    if n != 1:
        return "find text occurs %d times in %s (must be exactly once)" % (n, m.file)
    if dry:
        return None
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(m.find, m.replace))
    return None


def clean_env():
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(k, None)
    return env


def build(tree, runners, log):
    cmd = ["make", "-j" + JOBS, "VARIANT=" + VARIANT] + BUILD + \
          ["%s/tests/%s" % (BDIR, r) for r in runners]
    with open(log, "w") as f:
        f.write("$ %s\n" % " ".join(cmd))
        f.flush()
        rc = subprocess.run(cmd, cwd=tree, env=clean_env(), stdout=f,
                            stderr=subprocess.STDOUT).returncode
    return rc == 0


def run_suite(tree, suite, log):
    """Run one suite line in tree; return (failed, detail); failed is None when
    the line ran no test at all (narrowed to a test or tcase that is gone)."""
    runner, extra = suite
    env = clean_env()
    env.update({k: os.path.join(tree, v) for k, v in TREE_ENV.items()})
    env["PYTHON"] = PYTHON
    env.setdefault("CK_DEFAULT_TIMEOUT", "60")
    env.update(extra)
    with open(log, "w") as f:
        f.write("$ (cd %s && %s %s/tests/%s)\n" % (tree, " ".join(
            "%s=%s" % kv for kv in sorted(extra.items())), BDIR, runner))
        f.flush()
        p = subprocess.Popen([os.path.join(tree, BDIR, "tests", runner)], cwd=tree, env=env,
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return True, "timed out after %.0f s" % TIMEOUT
        finally:
            try:   # leftovers of the run (simulators, slapd, zmbatch)
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
    with open(log, errors="replace") as f:
        out = f.read()
    summary = re.findall(r"^\d+%: Checks: \d+, Failures: \d+, Errors: \d+", out, re.M)
    fails = re.findall(r"^[^\n:]+:\d+:[EF]:[^:]*:([^:\n]+):", out, re.M)
    if rc == 0 and (not summary or re.search(r"Checks: 0,", summary[-1])):
        return None, "%s ran no test (a narrowing to a test or tcase that does not exist?)" % runner
    if rc == 0:
        return False, summary[-1]
    if fails:
        uniq = list(dict.fromkeys(fails))
        return True, "%s failed" % ", ".join(uniq[:3]) + (" (+%d)" % (len(uniq) - 3)
                                                          if len(uniq) > 3 else "")
    return True, "exit %d%s" % (rc, ", " + summary[-1] if summary else ", no summary")


def main(argv):
    muts = parse(MUTATIONS_FILE)
    if argv[:1] == ["--list"]:
        for m in muts:
            print("%-34s %s (%s)" % (m.name, m.desc, m.file))
        return 0
    if argv[:1] == ["--check"]:
        bad = 0
        for m in muts:
            why = apply(m, ROOT, dry=True)
            if why:
                bad += 1
                print("%s: %s" % (m.name, why))
        print("%d mutation(s), %d broken" % (len(muts), bad))
        return 1 if bad else 0
    names = " ".join(argv).split()
    if names:
        known = {m.name for m in muts}
        bad = [n for n in names if n not in known]
        if bad:
            print("unknown mutation(s): %s (see --list)" % " ".join(bad), file=sys.stderr)
            return 2
        muts = [m for m in muts if m.name in names]
    os.makedirs(LOGDIR, exist_ok=True)
    keep = os.environ.get("MUTATE_KEEP") == "1"
    t_all = time.monotonic()
    print("mutate: %d mutation(s), logs in %s" % (len(muts), os.path.relpath(LOGDIR, ROOT)))

    runners = sorted({r for m in muts for r, _ in m.suites})
    if not build(ROOT, runners, os.path.join(LOGDIR, "baseline.build.log")):
        print("mutate: the unmutated tree does not build (tests/out/mutate/baseline.build.log)",
              file=sys.stderr)
        return 2
    baseline = {}   # suite label -> None (passes) or why it fails unmutated

    def baseline_fails(suite):
        label = suite_label(suite)
        if os.environ.get("MUTATE_BASELINE", "1") == "0":
            return None
        if label not in baseline:
            t0 = time.monotonic()
            log = os.path.join(LOGDIR, "baseline.%s.log" % re.sub(r"[^A-Za-z0-9_.=-]+", "_", label))
            failed, detail = run_suite(ROOT, suite, log)
            baseline[label] = detail if failed is not False else None
            print("  baseline %s: %s (%.0f s)" % (label, "passes" if failed is False else
                                                 "FAILS: " + detail, time.monotonic() - t0),
                  flush=True)
        return baseline[label]

    rows = []   # (name, suite, caught?, text, seconds)
    for m in muts:
        t0 = time.monotonic()
        tree = tempfile.mkdtemp(prefix="zmb-mutate-%s-" % m.name)
        suite_txt = " / ".join(suite_label(s) for s in m.suites)
        try:
            copy_tree(tree)
            why = apply(m, tree)
            if why:
                rows.append((m.name, suite_txt, False, "mutation broken: " + why))
            elif not build(tree, sorted({r for r, _ in m.suites}),
                           os.path.join(LOGDIR, m.name + ".build.log")):
                rows.append((m.name, suite_txt, False, "not caught - mutant does not build (see "
                             "tests/out/mutate/%s.build.log)" % m.name))
            else:
                res = None
                unsure = []
                for s in m.suites:
                    label = suite_label(s)
                    log = os.path.join(LOGDIR, "%s.%s.log" % (m.name, s[0]))
                    failed, detail = run_suite(tree, s, log)
                    if failed is None:
                        unsure.append(detail)
                    elif failed:
                        why = baseline_fails(s)
                        if why is None:
                            res = (label, True, "yes: " + detail)
                            break
                        unsure.append("%s fails without the mutation too (%s)" % (s[0], why))
                if res is None:
                    res = (suite_txt, False, "NOT CAUGHT: " + ("; ".join(unsure) if unsure
                                                              else "all pass"))
                rows.append((m.name, res[0], res[1], res[2]))
        finally:
            if keep:
                print("  kept %s" % tree)
            else:
                shutil.rmtree(tree, ignore_errors=True)
        secs = time.monotonic() - t0
        rows[-1] = rows[-1] + (secs,)
        print("%-34s %s (%.0f s)" % (m.name, rows[-1][3], secs), flush=True)

    print()
    w1 = max([len("mutation")] + [len(r[0]) for r in rows])
    w2 = max([len("suite")] + [len(r[1]) for r in rows])
    print("%-*s | %-*s | caught | seconds" % (w1, "mutation", w2, "suite"))
    for name, suite, ok, text, secs in rows:
        print("%-*s | %-*s | %s | %.0f" % (w1, name, w2, suite, text, secs))
    passed = sum(1 for r in rows if r[2])
    failed = len(rows) - passed
    print("total %.0f s" % (time.monotonic() - t_all))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
