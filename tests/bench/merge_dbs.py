#!/usr/bin/env python3
# Build N shard state DBs of PER done accounts each (5 events per account) in the
# current directory, for timing 'zmbatch report --merge' (README, Running at scale).
# Usage: python3 tests/bench/merge_dbs.py [N=4] [PER=25000]
import glob, os, sqlite3, sys
files = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'schema', '*.sql')))
top = int(files[-1].split('/')[-1][:3])
N = int(sys.argv[1]) if len(sys.argv) > 1 else 4
PER = int(sys.argv[2]) if len(sys.argv) > 2 else 25000
for d in range(N):
    db = sqlite3.connect(f'state.shard{d}-of-{N}.db')
    for f in files: db.executescript(open(f).read())
    db.execute(f'PRAGMA user_version = {top}')
    db.execute("INSERT INTO meta VALUES ('job_identity','bench|a:1|b:2'),('job_name','bench'),('shard',?)", (f'{d}/{N}',))
    db.execute("INSERT INTO runs (started_at, ended_at, pid, host, user, command, exit_status, bytes) VALUES (1e9, 1e9+3600, 1, 'h', 'u', 'run --shard', 0, 0)")
    db.execute("INSERT INTO stages (name, type, position, state) VALUES ('mail','migrate',0,'done')")
    rows = []
    for i in range(PER):
        seq = i * N + d
        rows.append((f'user{seq}@example.com', f'user{seq}@example.net', seq, 1000000 + seq, 'done', 1, 1000000 + seq, 1.5, 1e9 + seq % 3600, 1e9))
    db.executemany("INSERT INTO accounts (account, target, seq, size, state, attempts, bytes, seconds, finished_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    db.execute("INSERT INTO events (at, run_id, account_id, stage, level, message) SELECT 1e9, 1, id, 'mail', 'info', 'event ' || k.v || ' of ' || account FROM accounts, (SELECT 1 v UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5) k")
    db.commit(); db.close()
