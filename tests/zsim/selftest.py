#!/usr/bin/env python3
"""selftest.py - tests of zsim's item kinds, date-window exports, list= exports, the
import of appointments/tasks/contacts/documents and the mail SOAP requests.

Run: python3 tests/zsim/selftest.py [-v]   (needs the openssl CLI; Python stdlib only)
tests/check_e2e_zsim.c runs it (test zsim_python_selftest).  Each test starts its own
simulator.  Every expectation names the real behaviour it pins (see zsim.py comments).
"""

import http.client
import io
import json
import os
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ZSIM = os.path.join(HERE, "zsim.py")
BASE = 1700000000000          # base_date_ms: message j is dated BASE + j*60000
DAY = 86400000
_PKI = None


def pki():
    global _PKI
    if _PKI is None:
        d = tempfile.mkdtemp(prefix="zsim-selftest-")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d + "/k.pem",
                        "-out", d + "/c.pem", "-days", "2", "-subj", "/CN=localhost"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _PKI = d
    return _PKI


class Sim:
    def __init__(self, cfg):
        d = pki()
        self.dir = tempfile.mkdtemp(prefix="zsim-st-", dir=d)
        with open(self.dir + "/sim.json", "w") as fh:
            json.dump(cfg, fh)
        pf = self.dir + "/port"
        self.proc = subprocess.Popen([sys.executable, ZSIM, "--config", self.dir + "/sim.json",
                                      "--cert", d + "/c.pem", "--key", d + "/k.pem",
                                      "--port-file", pf, "--quiet", "--die-with-parent",
                                      "--max-lifetime", "300"],
                                     stdout=subprocess.DEVNULL)
        t0 = time.time()
        while not os.path.exists(pf):
            if time.time() - t0 > 15 or self.proc.poll() is not None:
                raise RuntimeError("zsim did not start")
            time.sleep(0.05)
        with open(pf) as fh:
            self.port = int(fh.read())
        self.ctx = ssl._create_unverified_context()
        self.tok = None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def http(self, method, path, body=None, headers=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read(), dict(r.getheaders())
        finally:
            c.close()

    def ctl(self, path, obj=None):
        st, b, _ = self.http("POST" if obj is not None else "GET", path,
                             json.dumps(obj).encode() if obj is not None else None)
        return st, json.loads(b or b"null")

    def soap(self, name, req, account=None, ns="urn:zimbraMail", extra_ctx=None, token=True):
        ctx = {"_jsns": "urn:zimbra"}
        if token:
            ctx["authToken"] = self.login()
        if account is not None:
            ctx["account"] = {"by": "name", "_content": account}
        ctx.update(extra_ctx or {})
        r = dict(req)
        r["_jsns"] = ns
        st, b, _ = self.http("POST", "/service/admin/soap",
                             json.dumps({"Header": {"context": ctx}, "Body": {name: r}}).encode(),
                             {"Content-Type": "application/json"})
        return st, json.loads(b)

    def login(self):
        if self.tok is None:
            st, r = self.soap("AuthRequest", {"name": "admin@example.com", "password": "test123"},
                              ns="urn:zimbraAdmin", token=False)
            self.tok = r["Body"]["AuthResponse"]["authToken"][0]["_content"]
        return self.tok

    def export(self, acct, query=""):
        st, b, h = self.http("GET", "/service/home/%s/?fmt=tgz%s" % (acct, query),
                             headers={"Cookie": "ZM_ADMIN_AUTH_TOKEN=" + self.login()})
        return st, b

    def entries(self, acct, query=""):
        """(status, [meta dicts in archive order]) of an export."""
        st, b = self.export(acct, query)
        if st != 200:
            return st, b
        out = []
        with tarfile.open(fileobj=io.BytesIO(b), mode="r:gz") as tf:
            for m in tf:
                if m.name.endswith(".meta"):
                    out.append(json.loads(tf.extractfile(m).read()))
        return st, out

    def import_(self, acct, data, query="", folder=""):
        st, b, _ = self.http("POST", "/service/home/%s/%s?fmt=tgz%s" % (acct, folder, query), data,
                             {"Cookie": "ZM_ADMIN_AUTH_TOKEN=" + self.login(),
                              "Content-Type": "application/octet-stream"})
        return st, b

    def items(self, acct):
        return self.ctl("/zsim/items?account=" + acct)[1]


def acct_cfg(**kw):
    a = {"name": "alice@example.com"}
    a.update(kw)
    return a


def cfg(*accts, **kw):
    c = {"name": "src", "base_date_ms": BASE,
         "domains": [{"name": "example.com", "accounts": list(accts)}]}
    c.update(kw)
    return c


class SimCase(unittest.TestCase):
    CFG = None

    def setUp(self):
        self.sim = Sim(self.CFG or cfg(acct_cfg()))

    def tearDown(self):
        self.sim.stop()

    def ids(self, metas, kind=None):
        return sorted(m["id"] for m in metas if m.get("type") != "folder"
                      and (kind is None or m["type"] == kind))


class WindowExport(SimCase):
    # messages j = 0..9 dated BASE + j*60000
    CFG = cfg(acct_cfg(items=10, item_size=300, folders=["Inbox", "Sent"],
                       appointments=[{"start": BASE + 0, "end": BASE + 3600000, "uid": "a-in"},
                                     {"start": BASE - DAY, "end": BASE - DAY + 60000, "uid": "a-before"},
                                     {"start": BASE + DAY, "end": BASE + 2 * DAY, "uid": "a-end-edge"},
                                     {"start": BASE - 3600000, "end": BASE + 3600000, "uid": "a-straddle"}],
                       tasks=[{"subject": "undated"}, {"start": BASE + 5 * DAY, "end": BASE + 6 * DAY,
                                                       "subject": "dated-later"}],
                       contacts=1, documents=[{"name": "d.txt", "date": BASE + 120000}]))

    def msg_dates(self, metas):
        return sorted(m["date"] for m in metas if m.get("type") == "message")

    def test_after_edge_is_plus_1000_and_before_is_exclusive(self):
        # start = the date of message 2: after:<start> means date >= start + 1000, so
        # message 2 itself is NOT in the window; end = the date of message 6 is excluded
        st, metas = self.sim.entries("alice@example.com", "&types=message&start=%d&end=%d"
                                     % (BASE + 120000, BASE + 360000))
        self.assertEqual(st, 200)
        self.assertEqual(self.msg_dates(metas), [BASE + j * 60000 for j in (3, 4, 5)])
        # one second earlier: message 2 is in
        st, metas = self.sim.entries("alice@example.com", "&types=message&start=%d&end=%d"
                                     % (BASE + 119000, BASE + 360000))
        self.assertEqual(self.msg_dates(metas)[0], BASE + 120000)

    def test_windows_cover_everything_only_with_overlap(self):
        # consecutive windows [s, e) [e, f): the message dated exactly e is in neither
        got = []
        for s, e in ((BASE - 60000, BASE + 240000), (BASE + 240000, BASE + 600000)):
            st, metas = self.sim.entries("alice@example.com", "&types=message&start=%d&end=%d" % (s, e))
            got += self.msg_dates(metas)
        self.assertNotIn(BASE + 240000, got)
        self.assertEqual(len(got), 9)

    def test_no_folder_entries_in_a_window_and_all_in_a_full_export(self):
        st, metas = self.sim.entries("alice@example.com", "&start=%d&end=%d" % (BASE - 2 * DAY, BASE + 10 * DAY))
        self.assertFalse([m for m in metas if m["type"] == "folder"])
        st, metas = self.sim.entries("alice@example.com")
        folders = {m["path"]: m for m in metas if m["type"] == "folder"}
        for f in ("Inbox", "Sent", "Trash", "Junk", "Calendar", "Contacts", "Tasks", "Briefcase"):
            self.assertIn(f, folders)
        self.assertEqual(folders["Calendar"]["id"], 10)
        self.assertEqual(folders["Calendar"]["view"], "appointment")
        # types= alone also drops the folders (sysTypes.clear())
        st, metas = self.sim.entries("alice@example.com", "&types=message")
        self.assertFalse([m for m in metas if m["type"] == "folder"])

    def test_appointments_by_start_and_end(self):
        st, metas = self.sim.entries("alice@example.com", "&types=appointment&start=%d&end=%d"
                                     % (BASE - 1, BASE + DAY))
        # a-in starts at BASE >= start and ends before end; a-end-edge starts at end;
        # a-straddle overlaps the window but starts before start (appt-start:>=)
        self.assertEqual([m["uid"] for m in metas], ["a-in"])
        st, metas = self.sim.entries("alice@example.com", "&types=appointment&start=%d&end=%d"
                                     % (BASE - 1, BASE + 2 * DAY + 1))
        self.assertEqual(sorted(m["uid"] for m in metas), ["a-end-edge", "a-in"])

    def test_start_without_end_exports_no_appointment(self):
        # CalendarItem.expandInstances(start, -1): no instance -> dropped in saveItem, but
        # the archive was opened already: 200 with an empty archive
        st, metas = self.sim.entries("alice@example.com", "&types=appointment&start=%d" % (BASE - 2 * DAY))
        self.assertEqual(st, 200)
        self.assertEqual(metas, [])

    def test_undated_tasks_in_every_window(self):
        for s, e in ((BASE - 10 * DAY, BASE - 9 * DAY), (BASE, BASE + DAY), (BASE + 5 * DAY, BASE + 7 * DAY)):
            st, metas = self.sim.entries("alice@example.com", "&types=task&start=%d&end=%d" % (s, e))
            subj = sorted(m["subject"] for m in metas)
            self.assertIn("undated", subj)
            self.assertEqual("dated-later" in subj, s == BASE + 5 * DAY)

    def test_trash_and_junk_left_out_unless_the_admin_includes_them(self):
        for f in ("Trash", "Junk"):
            self.sim.ctl("/zsim/add-items", {"account": "alice@example.com", "n": 1, "folder": f})
        st, metas = self.sim.entries("alice@example.com", "&types=message")
        folders = {m["folder"] for m in metas}
        self.assertEqual(folders, {"Inbox", "Sent"})
        st, metas = self.sim.entries("alice@example.com")       # full export too (is:local)
        self.assertEqual({m["folder"] for m in metas if m["type"] == "message"}, {"Inbox", "Sent"})
        self.sim.ctl("/zsim/knobs", {"include_trash_in_search": True, "include_spam_in_search": True})
        st, metas = self.sim.entries("alice@example.com", "&types=message")
        self.assertEqual({m["folder"] for m in metas}, {"Inbox", "Sent", "Trash", "Junk"})

    def test_folder_target_has_its_own_entry_and_names_trash(self):
        self.sim.ctl("/zsim/add-items", {"account": "alice@example.com", "n": 2, "folder": "Trash"})
        st, b, _ = self.sim.http("GET", "/service/home/alice@example.com/Trash?fmt=tgz",
                                 headers={"Cookie": "ZM_ADMIN_AUTH_TOKEN=" + self.sim.login()})
        self.assertEqual(st, 200)
        with tarfile.open(fileobj=io.BytesIO(b), mode="r:gz") as tf:
            metas = [json.loads(tf.extractfile(m).read()) for m in tf if m.name.endswith(".meta")]
        self.assertEqual(metas[0], {"type": "folder", "path": "Trash", "id": 3})
        self.assertTrue(metas[1:] and all(m["folder"] == "Trash" for m in metas[1:]))

    def test_types_and_204(self):
        st, metas = self.sim.entries("alice@example.com", "&types=contact,document")
        self.assertEqual(sorted(m["type"] for m in metas), ["contact", "document"])
        st, _ = self.sim.export("alice@example.com", "&types=message&start=%d&end=%d" % (BASE + 10 * DAY, BASE + 11 * DAY))
        self.assertEqual(st, 204)
        st, body = self.sim.export("alice@example.com", "&types=bogus")
        self.assertEqual(st, 500)
        self.assertIn(b"mail.INVALID_TYPE", body)


class MaxDaysAndList(SimCase):
    CFG = cfg(acct_cfg(items=5, item_size=300, attrs={"zimbraExportMaxDays": "2"}),
              {"name": "bob@example.com", "items": 3, "item_size": 300})

    def test_max_days(self):
        st, body = self.sim.export("alice@example.com")
        self.assertEqual(st, 500)
        self.assertIn(b"mail.EXPORT_PERIOD_NOT_SPECIFIED", body)
        st, body = self.sim.export("alice@example.com", "&start=%d" % BASE)
        self.assertIn(b"mail.EXPORT_PERIOD_NOT_SPECIFIED", body)
        st, body = self.sim.export("alice@example.com", "&start=%d&end=0" % BASE)
        self.assertIn(b"mail.EXPORT_PERIOD_NOT_SPECIFIED", body)
        st, body = self.sim.export("alice@example.com", "&start=%d&end=%d" % (BASE, BASE + 2 * DAY + 1))
        self.assertEqual(st, 500)
        self.assertIn(b"mail.EXPORT_PERIOD_TOO_LONG", body)
        self.assertIn(b"Specified period is 3 days", body)
        st, _ = self.sim.export("alice@example.com", "&start=%d&end=%d" % (BASE - 1000, BASE - 1000 + 2 * DAY))
        self.assertEqual(st, 200)
        # with callback=: a 200 'fail' page carrying the code
        st, body = self.sim.export("alice@example.com", "&callback=cb")
        self.assertEqual(st, 200)
        self.assertIn(b"'fail'", body)
        self.assertIn(b"mail.EXPORT_PERIOD_NOT_SPECIFIED", body)
        # the cos knob applies to bob, who has no attr of his own
        self.sim.ctl("/zsim/knobs", {"export_max_days": 1})
        st, body = self.sim.export("bob@example.com")
        self.assertIn(b"mail.EXPORT_PERIOD_NOT_SPECIFIED", body)

    def test_list_ignores_max_days_and_stops_at_a_missing_id(self):
        ids = [it["id"] for it in self.sim.items("alice@example.com")["items"]]
        st, metas = self.sim.entries("alice@example.com", "&list=%d,%d" % (ids[0], ids[3]))
        self.assertEqual(st, 200)
        self.assertEqual(self.ids(metas), [ids[0], ids[3]])
        self.sim.ctl("/zsim/delete-item", {"account": "alice@example.com", "id": ids[1]})
        st, metas = self.sim.entries("alice@example.com", "&list=%d,%d,%d" % (ids[0], ids[1], ids[2]))
        self.assertEqual(st, 200)
        self.assertEqual(self.ids(metas), [ids[0]])        # the rest silently left out
        st, _ = self.sim.export("alice@example.com", "&list=%d,%d" % (ids[1], ids[2]))
        self.assertEqual(st, 204)
        # a folder id: the folder's entry only
        st, metas = self.sim.entries("alice@example.com", "&list=2")
        self.assertEqual(metas, [{"type": "folder", "path": "Inbox", "id": 2, "view": "message"}])


class ControlEndpoints(SimCase):
    CFG = cfg(acct_cfg(items=2, item_size=300))

    def test_add_move_edit_delete(self):
        st, r = self.sim.ctl("/zsim/add-items", {"account": "alice@example.com", "n": 2, "type": "appointment",
                                                 "date": BASE + 5555, "start": BASE, "end": BASE + 1000,
                                                 "uid": "u"})
        self.assertEqual(st, 200)
        self.assertEqual(r["date_ms"], BASE + 5000)        # whole seconds
        a1, a2 = r["ids"]
        st, f = self.sim.ctl("/zsim/add-folder", {"account": "alice@example.com", "folder": "Cal2"})
        self.assertGreaterEqual(f["id"], 257)
        self.sim.ctl("/zsim/move-item", {"account": "alice@example.com", "id": a1, "folder": "Cal2"})
        before = {i["id"]: i for i in self.sim.items("alice@example.com")["items"]}
        st, e = self.sim.ctl("/zsim/edit-item", {"account": "alice@example.com", "id": a2, "subject": "new"})
        self.assertEqual(e["rev"], 2)
        self.assertNotEqual(e["digest"], before[a2]["digest"])
        msg = [i for i in before.values() if i["type"] == "message"][0]
        st, e = self.sim.ctl("/zsim/edit-item", {"account": "alice@example.com", "id": msg["id"]})
        self.assertNotEqual(e["digest"], msg["digest"])
        self.sim.ctl("/zsim/delete-item", {"account": "alice@example.com", "id": msg["id"]})
        view = self.sim.items("alice@example.com")
        items = {i["id"]: i for i in view["items"]}
        self.assertNotIn(msg["id"], items)
        self.assertEqual(items[a1]["folder"], "Cal2")
        self.assertEqual((items[a1]["uid"], items[a2]["uid"]), ("u-0", "u-1"))
        self.assertIn({"id": f["id"], "path": "Cal2", "view": None, "n": 1}, view["folders"])


def tgz(entries):
    """A zsim-style archive from [(meta dict, data bytes)]."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for n, (meta, data) in enumerate(entries):
            base = "%s/%010d-x" % (meta["folder"], meta.get("id", n))
            for name, b in ((base + ".meta", json.dumps(meta).encode()), (base, data)):
                ti = tarfile.TarInfo(name)
                ti.size = len(b)
                tf.addfile(ti, io.BytesIO(b))
    return buf.getvalue()


def cal(uid, folder="Calendar", subject="s", kind="appointment", iid=900, rev=1):
    import hashlib
    data = ("%s %s %s %d" % (kind, uid, subject, rev)).encode()
    return ({"id": iid, "type": kind, "folder": folder, "date": BASE, "uid": uid, "subject": subject,
             "start": BASE, "end": BASE + 1000, "rev": rev, "size": len(data),
             "digest": hashlib.sha256(data).hexdigest()}, data)


class ImportKinds(SimCase):
    CFG = cfg(acct_cfg(appointments=[{"uid": "U1", "folder": "Calendar", "start": BASE, "subject": "orig"}],
                       tasks=[{"uid": "T1", "subject": "task"}],
                       contacts=[{"email": "c@x", "firstName": "C", "fullName": "C X"}],
                       documents=[{"name": "d.txt", "ver": 2}]))

    def by_uid(self):
        return {i.get("uid"): i for i in self.sim.items("alice@example.com")["items"] if i.get("uid")}

    def test_appointment_matched_by_uid_anywhere(self):
        old = self.by_uid()["U1"]
        # skip: same UID in ANOTHER folder -> left alone, nothing added
        st, _ = self.sim.import_("alice@example.com", tgz([cal("U1", "Other", "changed")]))
        self.assertEqual(st, 200)
        cur = self.by_uid()
        self.assertEqual((cur["U1"]["subject"], cur["U1"]["folder"]), ("orig", "Calendar"))
        self.assertEqual(sum(1 for i in self.sim.items("alice@example.com")["items"]
                             if i["type"] == "appointment"), 1)
        # modify: the same item (same id) gets the archive's content, in its OLD folder
        self.sim.import_("alice@example.com", tgz([cal("U1", "Other", "changed")]), "&resolve=modify")
        cur = self.by_uid()["U1"]
        self.assertEqual((cur["id"], cur["subject"], cur["folder"]), (old["id"], "changed", "Calendar"))
        # replace: deleted and created anew in the archive's folder
        self.sim.import_("alice@example.com", tgz([cal("U1", "Other", "again")]), "&resolve=replace")
        cur = self.by_uid()["U1"]
        self.assertNotEqual(cur["id"], old["id"])
        self.assertEqual((cur["subject"], cur["folder"]), ("again", "Other"))
        # a task with a known UID is matched the same way
        self.sim.import_("alice@example.com", tgz([cal("T1", "Tasks", "t2", kind="task")]), "&resolve=modify")
        self.assertEqual(self.by_uid()["T1"]["subject"], "t2")
        # a new UID is added
        self.sim.import_("alice@example.com", tgz([cal("U2")]))
        self.assertIn("U2", self.by_uid())

    def test_contacts_and_documents(self):
        import hashlib
        items = self.sim.items("alice@example.com")["items"]
        doc = [i for i in items if i["type"] == "document"][0]
        c = {"id": 901, "type": "contact", "folder": "Contacts", "email": "c@x", "firstName": "C",
             "fullName": "C X", "date": BASE, "subject": "C X"}
        d = {"id": 902, "type": "document", "folder": "Briefcase", "name": "d.txt", "ver": 1, "date": BASE,
             "subject": "d.txt"}
        arch = tgz([(c, b"vcard"), (d, b"old doc")])
        self.sim.import_("alice@example.com", arch)     # skip: equal contact, older doc version
        n = lambda t: sum(1 for i in self.sim.items("alice@example.com")["items"] if i["type"] == t)
        self.assertEqual((n("contact"), n("document")), (1, 1))
        # under a folder (not the root) the contact is not looked for: added again
        self.sim.import_("alice@example.com", arch, folder="Inbox")
        self.assertEqual(n("contact"), 2)
        # ... even when an equal one is already in that destination (Inbox/Contacts)
        self.sim.import_("alice@example.com", arch, folder="Inbox")
        self.assertEqual(n("contact"), 3)
        # a newer document version becomes a revision of the same document
        d2 = dict(d, ver=5)
        self.sim.import_("alice@example.com", tgz([(d2, b"new doc")]))
        docs = [i for i in self.sim.items("alice@example.com")["items"]
                if i["type"] == "document" and i["folder"] == "Briefcase"]
        self.assertEqual(len(docs), 1)
        self.assertEqual((docs[0]["id"], docs[0]["ver"]), (doc["id"], 3))
        self.assertEqual(docs[0]["digest"], hashlib.sha256(b"new doc").hexdigest())


class CarbonioImport(SimCase):
    CFG = cfg(acct_cfg(), product="carbonio")

    def test_tasks_and_documents_dropped_with_a_warning(self):
        d = {"id": 902, "type": "document", "folder": "Briefcase", "name": "d.txt", "ver": 1, "date": BASE}
        st, body = self.sim.import_("alice@example.com",
                                    tgz([cal("T9", "Tasks", kind="task"), (d, b"doc"), cal("A9")]),
                                    "&callback=cb")
        self.assertEqual(st, 200)
        self.assertIn(b"'warn'", body)
        self.assertEqual(body.count(b"formatter.UNKNOWN_ERROR"), 2)
        kinds = sorted(i["type"] for i in self.sim.items("alice@example.com")["items"])
        self.assertEqual(kinds, ["appointment"])


class MailSoap(SimCase):
    CFG = cfg(acct_cfg(items=4, item_size=300, folders=["Inbox", "Trash", "Archive/2023"],
                       contacts=1, appointments=[{"start": BASE}]))

    def test_get_folder(self):
        st, r = self.sim.soap("GetFolderRequest", {}, account="alice@example.com")
        self.assertEqual(st, 200)
        resp = r["Body"]["GetFolderResponse"]
        self.assertEqual(resp["_jsns"], "urn:zimbraMail")
        root = resp["folder"][0]
        zid = self.sim.items("alice@example.com")["id"]
        self.assertEqual((root["id"], root["name"], root["absFolderPath"]), (zid + ":1", "USER_ROOT", "/"))
        kids = {f["name"]: f for f in root["folder"]}
        self.assertEqual(kids["Inbox"]["id"], zid + ":2")
        self.assertEqual((kids["Inbox"]["absFolderPath"], kids["Inbox"]["view"], kids["Inbox"]["n"]),
                         ("/Inbox", "message", 2))
        self.assertEqual(kids["Trash"]["id"], zid + ":3")
        self.assertNotIn("view", kids["Trash"])
        self.assertEqual(kids["Calendar"]["n"], 1)
        sub = kids["Archive"]["folder"][0]
        self.assertEqual((sub["absFolderPath"], sub["n"]), ("/Archive/2023", 1))
        self.assertGreaterEqual(int(sub["id"].split(":")[1]), 257)
        # <noqualify/>: plain ids
        st, r = self.sim.soap("GetFolderRequest", {}, account="alice@example.com",
                              extra_ctx={"noqualify": {}})
        self.assertEqual(r["Body"]["GetFolderResponse"]["folder"][0]["id"], "1")
        # no account header: the admin's own (empty) mailbox
        st, r = self.sim.soap("GetFolderRequest", {})
        root = r["Body"]["GetFolderResponse"]["folder"][0]
        self.assertEqual(root["id"], "1")
        self.assertTrue(all(f["n"] == 0 for f in root["folder"]))
        st, r = self.sim.soap("GetFolderRequest", {}, account="nobody@example.com")
        self.assertEqual(st, 500)
        self.assertEqual(r["Body"]["Fault"]["Detail"]["Error"]["Code"], "account.NO_SUCH_ACCOUNT")
        st, r = self.sim.soap("GetTagRequest", {}, account="alice@example.com")
        self.assertEqual(r["Body"]["GetTagResponse"], {"_jsns": "urn:zimbraMail"})

    def test_search(self):
        def search(**kw):
            req = {"types": "message,contact,document,appointment,task", "sortBy": "dateAsc", "limit": 100}
            req.update(kw)
            st, r = self.sim.soap("SearchRequest", req, account="alice@example.com")
            self.assertEqual(st, 200, r)
            return r["Body"]["SearchResponse"]
        r = search(query="is:anywhere")
        self.assertEqual(len(r["m"]), 4)                 # Trash included
        self.assertEqual(len(r["cn"]) + len(r["appt"]), 2)
        self.assertEqual((r["sortBy"], r["offset"], r["more"]), ("dateAsc", 0, False))
        r2 = search(query="is:local")
        self.assertEqual(len(r2["m"]), 3)                # Inbox + Archive/2023: Trash excluded
        r3 = search(query="is:anywhere", limit=1)
        self.assertEqual(r3["m"][0]["d"], BASE)
        self.assertTrue(r3["more"])
        self.assertEqual(len(r3["m"]) + len(r3.get("cn", [])) + len(r3.get("appt", [])), 1)
        r4 = search(query="is:anywhere", sortBy="dateDesc", limit=1, types="message")
        self.assertEqual(r4["m"][0]["d"], BASE + 3 * 60000)
        r5 = search(query="is:anywhere", types="message", limit=2, offset=2)
        self.assertEqual(([m["d"] for m in r5["m"]], r5["offset"], r5["more"]),
                         ([BASE + 2 * 60000, BASE + 3 * 60000], 2, False))
        self.assertTrue(r5["m"][0]["id"].endswith(":%d" % (int(r5["m"][0]["id"].split(":")[1]))))
        r6 = search(types="message")                     # no query: in:inbox
        self.assertEqual(len(r6["m"]), 2)
        r7 = search(query="is:anywhere", types="message", limit=5000)
        self.assertEqual(len(r7["m"]), 4)
        st, stats = self.sim.ctl("/zsim/stats?log=0&digests=0")
        self.assertEqual(stats["mail"]["alice@example.com"]["searches"], 7)


class LimitsCapped(SimCase):
    CFG = cfg(acct_cfg(items=1005, item_size=100))

    def test_limit_max_1000_default_10(self):
        st, r = self.sim.soap("SearchRequest", {"query": "is:anywhere", "types": "message", "limit": 5000},
                              account="alice@example.com")
        self.assertEqual(len(r["Body"]["SearchResponse"]["m"]), 1000)
        st, r = self.sim.soap("SearchRequest", {"query": "is:anywhere", "types": "message"},
                              account="alice@example.com")
        self.assertEqual(len(r["Body"]["SearchResponse"]["m"]), 10)




def ssha(password, salt=b"saltsalt"[:4], algo="sha1"):
    import base64
    import hashlib
    h = getattr(hashlib, algo)(password.encode() + salt).digest()
    return ("{SSHA512}" if algo == "sha512" else "{SSHA}") + base64.b64encode(h + salt).decode()


class Provisioning(SimCase):
    """The admin calls of the provision stage, as the real handlers answer them."""
    CFG = cfg(acct_cfg(attrs={"userPassword": ssha("old-secret"), "displayName": "Alice"},
                       aliases=["al@example.com"], cos="gold"),
              cos=[{"name": "gold"}])

    def admin(self, name, req):
        st, r = self.sim.soap(name, req, ns="urn:zimbraAdmin")
        body = r["Body"]
        if "Fault" in body:
            return st, body["Fault"]["Detail"]["Error"]["Code"]
        return st, body[name[:-len("Request")] + "Response"]

    def attrs(self, acct):
        return {a["n"]: a["_content"] for a in acct["a"]}

    def test_get_account_blocks_the_password(self):
        st, r = self.admin("GetAccountRequest", {"account": {"by": "name", "_content": "alice@example.com"}})
        a = self.attrs(r["account"][0])
        self.assertEqual(a["userPassword"], "VALUE-BLOCKED")      # Provisioning.sanitizedAttrValue
        self.assertEqual(a["displayName"], "Alice")
        # by an alias, as getAccountByName
        st, r = self.admin("GetAccountRequest", {"account": {"by": "name", "_content": "al@example.com"}})
        self.assertEqual(r["account"][0]["name"], "alice@example.com")

    def test_create_keeps_zimbra_id_and_hash_and_refuses_what_the_real_one_refuses(self):
        zid = "0b9c3c44-61a2-4a54-8d41-3c1f4b3e2a10"
        h = ssha("pw-of-bob", b"\x01\x02\x03\x04\x05\x06\x07\x08", "sha512")
        gold = self.admin("GetCosRequest", {"cos": {"by": "name", "_content": "gold"}})[1]["cos"][0]["id"]
        st, r = self.admin("CreateAccountRequest", {"name": "Bob@example.com", "a": [
            {"n": "zimbraId", "_content": zid}, {"n": "userPassword", "_content": h},
            {"n": "zimbraCOSId", "_content": gold}, {"n": "displayName", "_content": "Bob B"}]})
        self.assertEqual((st, r["account"][0]["id"], r["account"][0]["name"]), (200, zid, "bob@example.com"))
        self.assertEqual(self.sim.ctl("/zsim/account?name=bob@example.com")[1]["attrs"]["userPassword"], h)
        self.assertEqual(self.attrs(r["account"][0])["cn"], "Bob B")
        # the user's old password works, a wrong one does not
        ok = self.sim.soap("AuthRequest", {"account": {"by": "name", "_content": "bob@example.com"},
                                           "password": "pw-of-bob"}, ns="urn:zimbraAccount", token=False)
        self.assertIn("AuthResponse", ok[1]["Body"])
        bad = self.sim.soap("AuthRequest", {"account": {"by": "name", "_content": "bob@example.com"},
                                            "password": "nope"}, ns="urn:zimbraAccount", token=False)
        self.assertEqual(bad[1]["Body"]["Fault"]["Detail"]["Error"]["Code"], "account.AUTH_FAILED")
        self.assertEqual(self.admin("CreateAccountRequest", {"name": "bob@example.com"})[1],
                         "account.ACCOUNT_EXISTS")
        self.assertEqual(self.admin("CreateAccountRequest", {"name": "al@example.com"})[1],
                         "account.ACCOUNT_EXISTS")
        self.assertEqual(self.admin("CreateAccountRequest", {"name": "c@example.com", "a": [
            {"n": "zimbraCOSId", "_content": "gold"}]})[1], "account.NO_SUCH_COS")   # an id, not a name
        self.assertEqual(self.admin("CreateAccountRequest", {"name": "c@example.com", "a": [
            {"n": "zimbraMailAlias", "_content": "x@example.com"}]})[1], "service.INVALID_REQUEST")
        self.assertEqual(self.admin("CreateAccountRequest", {"name": "c@nowhere.test"})[1],
                         "account.NO_SUCH_DOMAIN")
        self.assertEqual(self.admin("GetCosRequest", {"cos": {"by": "name", "_content": "silver"}})[1],
                         "account.NO_SUCH_COS")

    def test_signatures_and_identities_keep_their_ids(self):
        def as_alice(name, req):
            st, r = self.sim.soap(name, req, account="alice@example.com", ns="urn:zimbraAccount")
            b = r["Body"]
            return b["Fault"]["Detail"]["Error"]["Code"] if "Fault" in b else b[name[:-7] + "Response"]
        sid = "7e0c1d52-8a44-4a5e-9a69-2f0c7c3c0a11"
        r = as_alice("CreateSignatureRequest", {"signature": {"name": "work", "id": sid, "content": [
            {"type": "text/html", "_content": "<b>A</b>"}]}})
        self.assertEqual(r["signature"][0]["id"], sid)          # CreateSignature.java: id kept
        self.assertEqual(as_alice("CreateSignatureRequest", {"signature": {"name": "work"}}),
                         "account.SIGNATURE_EXISTS")
        self.assertEqual(as_alice("GetSignaturesRequest", {})["signature"][0]["content"][0]["_content"], "<b>A</b>")
        r = as_alice("CreateIdentityRequest", {"identity": {"name": "boss", "a": [
            {"name": "zimbraPrefIdentityId", "_content": sid}, {"name": "zimbraPrefFromAddress", "_content": "b@x"}]}})
        self.assertEqual(r["identity"][0]["id"], sid)            # createIdentity 7883-7886
        self.assertEqual(as_alice("CreateIdentityRequest", {"identity": {"name": "DEFAULT"}}),
                         "account.IDENTITY_EXISTS")
        names = [i["name"] for i in as_alice("GetIdentitiesRequest", {})["identity"]]
        self.assertEqual(names, ["DEFAULT", "boss"])

    def test_alias_and_modify(self):
        st, r = self.admin("GetAccountRequest", {"account": {"by": "name", "_content": "alice@example.com"}})
        zid = r["account"][0]["id"]
        self.assertEqual(self.admin("AddAccountAliasRequest", {"id": zid, "alias": "al@example.com"})[1],
                         "account.ACCOUNT_EXISTS")
        self.assertEqual(self.admin("AddAccountAliasRequest", {"id": zid, "alias": "a2@example.com"})[0], 200)
        st, r = self.admin("ModifyAccountRequest", {"id": zid, "a": [
            {"n": "zimbraPrefFoo", "_content": "1"}, {"n": "zimbraMailForwardingAddress", "_content": "x@y"},
            {"n": "zimbraMailForwardingAddress", "_content": "z@y"}, {"n": "displayName", "_content": ""}]})
        got = self.sim.ctl("/zsim/account?name=alice@example.com")[1]
        self.assertEqual(got["attrs"]["zimbraMailForwardingAddress"], ["x@y", "z@y"])
        self.assertNotIn("displayName", got["attrs"])
        self.assertEqual(got["aliases"], ["a2@example.com", "al@example.com"])


if __name__ == "__main__":
    try:
        unittest.main()
    finally:
        if _PKI:
            shutil.rmtree(_PKI, ignore_errors=True)
