#!/usr/bin/env python3
"""zsim.py - a simulated Zimbra admin server (admin SOAP + REST tgz) for tests.

One process = one server, HTTPS on loopback.  The interface (command line,
config JSON, control endpoints, knobs, stats) is documented in README.md next
to this file; the wire behaviour follows docs/zimbra-protocol.md sections 2-4
and 7.  Python 3 standard library only.

Threads: ThreadingHTTPServer, one thread per connection.  All mutable state
lives in one Sim object guarded by Sim.lock; archives are generated and parsed
outside the lock while they stream.
"""

import argparse
import base64
import collections
import email.utils
import hashlib
import hmac
import http.server
import io
import json
import os
import random
import re
import signal
import socket
import ssl
import struct
import sys
import tarfile
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
import zlib

# One fixed pseudo-random block: item bodies are slices of it, so they are
# incompressible and cheap to produce; the same on every simulator.
BLOCK = random.Random(0x5A51).randbytes(1 << 20)

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
COOKIE = "ZM_ADMIN_AUTH_TOKEN"
DEFAULT_FOLDERS = ["Inbox", "Sent", "Drafts", "Junk", "Trash"]
RECEIVER_CODES = {"service.FAILURE", "service.TEMPORARILY_UNAVAILABLE",
                  "account.TOO_MANY_SEARCH_RESULTS"}
XML_ELEMENT_KEYS = {"lifetime", "authToken"}  # encoded as child elements in XML
MAX_KEEP_DATA = 64 << 20


def now_ms():
    return int(time.time() * 1000)


class ResetConnection(Exception):
    """Abort the connection with a TCP reset."""


class Truncated(Exception):
    """The export stream hit its truncation point."""


class SoapFault(Exception):
    def __init__(self, code, text, status=500):
        super().__init__(text)
        self.code = code
        self.text = text
        self.status = status


# --------------------------------------------------------------------------
# mailbox items

def gen_item(r):
    """The eml bytes of a generated item; r = recipe {k, i, n, d}."""
    k, i, n, d = r["k"], int(r["i"]), int(r["n"]), int(r["d"])
    hdr = ("X-Zsim-Item: %s/%d\r\nFrom: sender%d@zsim.invalid\r\nTo: %s\r\n"
           "Subject: zsim item %d of %s\r\nDate: %s\r\nMessage-ID: <%d.%s@zsim.invalid>\r\n"
           "Content-Type: application/octet-stream\r\n\r\n"
           % (k, i, i % 17, k, i, k, email.utils.formatdate(d / 1000.0, usegmt=True),
              i, hashlib.sha1(k.encode()).hexdigest()[:12])).encode()
    if n <= len(hdr):
        return hdr[:n]
    out = bytearray(hdr)
    need = n - len(hdr)
    off = int.from_bytes(hashlib.sha256(("%s:%d" % (k, i)).encode()).digest()[:4], "big") % len(BLOCK)
    while need > 0:
        piece = BLOCK[off:off + need]
        out += piece
        need -= len(piece)
        off = 0
    return bytes(out)


class Item:
    __slots__ = ("id", "folder", "date", "size", "digest", "recipe", "data", "subject")

    def __init__(self, iid, folder, date, size, recipe=None, data=None, digest=None, subject=None):
        self.id = iid
        self.folder = folder
        self.date = date
        self.size = size
        self.recipe = recipe
        self.data = data
        self.digest = digest
        self.subject = subject or ("zsim item %s" % (recipe["i"] if recipe else iid))

    def content(self):
        if self.data is not None:
            return self.data
        if self.recipe is not None:
            return gen_item(self.recipe)
        return b""

    def get_digest(self):
        if self.digest is None:
            self.digest = hashlib.sha256(self.content()).hexdigest()
        return self.digest


class FolderDigests:
    """One import's FolderDigestInfo (real: ArchiveFormatter.java, FolderDigestInfo, made
    once per saveCallback): a folder's digest -> id map is read when the import first
    touches the folder and is not updated by what the import adds or deletes, so two
    equal messages in one archive are both added.  The real cache is a Guava cache of
    maximumSize 16: a folder pushed out is read again, then with what this import added.
    Modelled as an LRU of 16 (Guava may evict a little earlier: it is segmented)."""
    SIZE = 16

    def __init__(self):
        self.maps = collections.OrderedDict()

    def get(self, acct, folder):
        m = self.maps.get(folder)
        if m is None:
            m = self.maps[folder] = acct.folder_digests(folder)
            while len(self.maps) > self.SIZE:
                self.maps.popitem(last=False)
        else:
            self.maps.move_to_end(folder)
        return m


class Account:
    def __init__(self, sim, name, domain, spec):
        self.name = name.lower()
        self.domain = domain
        self.id = spec.get("id") or str(uuid.uuid5(uuid.NAMESPACE_DNS, "zsim:%s/%s" % (sim.name, self.name)))
        self.status = spec.get("status", "active")
        self.mailhost = spec.get("mailhost", sim.mailhost)
        self.attrs = dict(spec.get("attrs") or {})
        self.sys_account = bool(spec.get("zimbraIsSystemAccount"))
        self.sys_resource = bool(spec.get("zimbraIsSystemResource"))
        self.mbxid = sim.next_mbxid()
        self.folders = list(DEFAULT_FOLDERS)
        self.items = {}          # id -> Item, in insertion order
        self.next_id = 257
        self.next_gen = 0
        self.seed = spec.get("seed", self.name)
        folders = spec.get("folders") or ["Inbox"]
        for f in folders:
            self.add_folder(f)
        sizes = spec.get("sizes")
        if sizes is None:
            n = int(spec.get("items", 0))
            isz = spec.get("item_size", 2048)
            rng = random.Random("%s/sizes" % self.seed)
            if isinstance(isz, list):
                sizes = [rng.randint(int(isz[0]), int(isz[1])) for _ in range(n)]
            else:
                sizes = [int(isz)] * n
        self.default_size = int(sizes[0]) if sizes else 2048
        for j, sz in enumerate(sizes):
            self.gen_item(folders[j % len(folders)], int(sz), sim.base_date_ms + j * 60000)

    def add_folder(self, f):
        f = f.strip("/")
        parts = f.split("/")
        for k in range(1, len(parts) + 1):
            p = "/".join(parts[:k])
            if p and p not in self.folders:
                self.folders.append(p)

    def gen_item(self, folder, size, date):
        r = {"k": self.name, "i": self.next_gen, "n": size, "d": date}
        self.next_gen += 1
        it = Item(self.next_id, folder, date, size, recipe=r)
        self.next_id += 1
        self.items[it.id] = it
        return it

    def _new_id(self, it):
        it.id = self.next_id
        self.next_id += 1
        self.items[it.id] = it

    def folder_digests(self, folder):
        """digest -> item id of the messages now in `folder` (real: Mailbox.getDigestsForItems)."""
        return {o.get_digest(): o.id for o in self.items.values() if o.folder == folder}

    def empty_folders(self, under):
        """resolve=reset: delete every item in `under` and its subfolders ("" = the whole mailbox).
        real: ArchiveFormatter.saveCallback, Resolve.Reset loop over fldr.getSubfolderHierarchy()"""
        for k in [k for k, o in self.items.items()
                  if not under or o.folder == under or o.folder.startswith(under + "/")]:
            del self.items[k]

    def add_imported(self, it, resolve, root, digests, src_id=None):
        """Store one imported message the way the real import does; returns 'added',
        'skipped' or 'replaced' ('failed' for the one case the real server errors on).

        real: store/src/java/com/zimbra/cs/service/formatter/ArchiveFormatter.java,
        addItem(), case MESSAGE:
          - only when importing at the mailbox root (`root`) and resolve is not reset:
            the message with the archive's own id is "old" if it has the same digest
            AND is in the same destination folder;
          - otherwise the destination folder's digest map (FolderDigestInfo, read once
            per folder per import: `digests`) names the old message with that digest;
          - an old message found: replace deletes it and adds the new one; skip and
            modify do not re-add (modify also rewrites flags/tags: not modelled);
          - a digest map entry whose message is gone (replace deleted it earlier in the
            same import: two equal messages in the archive) -> getMessageById throws,
            addError: the item is not imported ('failed').
        A message in another folder never matches: it is added there."""
        self.add_folder(it.folder)
        old = None
        if root and resolve != "reset" and src_id is not None:
            o = self.items.get(src_id)
            if o is not None and o.folder == it.folder and o.get_digest() == it.digest:
                old = o
        if old is None:
            did = digests.get(self, it.folder).get(it.digest)
            if did is not None:
                old = self.items.get(did)
                if old is None:
                    return "failed"
        if old is not None:
            if resolve != "replace":
                return "skipped"
            del self.items[old.id]
            self._new_id(it)
            return "replaced"
        self._new_id(it)
        return "added"

    def size(self):
        return sum(it.size for it in self.items.values())

    def all_attrs(self):
        a = {
            "zimbraId": self.id,
            "uid": self.name.split("@")[0],
            "mail": self.name,
            "zimbraMailDeliveryAddress": self.name,
            "zimbraMailHost": self.mailhost,
            "zimbraAccountStatus": self.status,
        }
        if self.sys_account:
            a["zimbraIsSystemAccount"] = "TRUE"
        if self.sys_resource:
            a["zimbraIsSystemResource"] = "TRUE"
        a.update(self.attrs)
        return a


# --------------------------------------------------------------------------
# LDAP filter subset for SearchDirectory query

def ldap_match(flt, attrs):
    flt = (flt or "").strip()
    if not flt:
        return True
    pos, res = _ldap_eval(flt, 0, attrs)
    if pos != len(flt):
        raise ValueError("trailing text in filter")
    return res


def _ldap_eval(s, i, attrs):
    if i >= len(s) or s[i] != "(":
        raise ValueError("expected (")
    i += 1
    if i < len(s) and s[i] in "&|!":
        op = s[i]
        i += 1
        vals = []
        while i < len(s) and s[i] == "(":
            i, v = _ldap_eval(s, i, attrs)
            vals.append(v)
        if i >= len(s) or s[i] != ")":
            raise ValueError("expected )")
        if op == "&":
            return i + 1, all(vals)
        if op == "|":
            return i + 1, any(vals)
        if len(vals) != 1:
            raise ValueError("! takes one filter")
        return i + 1, not vals[0]
    j = s.find(")", i)
    if j < 0 or "=" not in s[i:j]:
        raise ValueError("bad item")
    name, _, val = s[i:j].partition("=")
    name = name.strip().lower()
    have = None
    for k, v in attrs.items():
        if k.lower() == name:
            have = str(v)
    if name == "objectclass":
        have = "zimbraAccount"
    if have is None:
        return j + 1, False
    if val == "*":
        return j + 1, True
    rx = "^" + ".*".join(re.escape(p) for p in val.split("*")) + "$"
    return j + 1, re.match(rx, have, re.I) is not None


# --------------------------------------------------------------------------
# SOAP element helpers (JSON form is the model; XML is converted to it)

def jval(d, key):
    if not isinstance(d, dict):
        return None
    v = d.get(key)
    if isinstance(v, list):
        v = v[0] if v else None
    if isinstance(v, dict):
        v = v.get("_content")
    return v


def jelem(d, key):
    if not isinstance(d, dict):
        return None
    v = d.get(key)
    if isinstance(v, list):
        v = v[0] if v else None
    if v is not None and not isinstance(v, dict):
        v = {"_content": v}
    return v


def jlist(d, key):
    if not isinstance(d, dict):
        return []
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        v = [v]
    return [x if isinstance(x, dict) else {"_content": x} for x in v]


def local(tag):
    return tag.rsplit("}", 1)[-1]


def xml_to_dict(el):
    d = {}
    for k, v in el.attrib.items():
        d[local(k)] = v
    for c in el:
        d.setdefault(local(c.tag), []).append(xml_to_dict(c))
    if el.text and el.text.strip():
        d["_content"] = el.text.strip()
    return d


def dict_to_xml(parent, name, d):
    el = ET.SubElement(parent, name)
    if not isinstance(d, dict):
        d = {"_content": d}
    for k, v in d.items():
        if k == "_jsns":
            el.set("xmlns", v)
        elif k == "_content":
            el.text = str(v)
        elif isinstance(v, list):
            for x in v:
                dict_to_xml(el, k, x)
        elif isinstance(v, dict) or k in XML_ELEMENT_KEYS:
            dict_to_xml(el, k, v)
        elif isinstance(v, bool):
            el.set(k, "1" if v else "0")
        else:
            el.set(k, str(v))
    return el


def truthy(v):
    return v is True or str(v).lower() in ("1", "true")


def parse_date(v):
    """ms since epoch from '1700000000000' or 'mm/dd/yyyy'; None if unknown."""
    v = str(v).strip()
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", v)
    if m:
        import calendar
        return calendar.timegm((int(m.group(3)), int(m.group(1)), int(m.group(2)), 0, 0, 0)) * 1000
    return None


# --------------------------------------------------------------------------
# Jetty's DoSFilter, as Zimbra and Carbonio configure it

class RateTracker:
    """Jetty DoSFilter.RateTracker (jetty-servlets DoSFilter.java; research13/facts.md 1.4):
    a ring of the last maxRequestsPerSec request times.  isRateExceeded(now):
        last = _timestamps[_next]; _timestamps[_next] = now; _next = (_next + 1) % size;
        return last != 0 && (now - last) < 1000L;
    so request N+1 inside any sliding second of N requests is rejected, and a rejected
    request is recorded like any other: a client that keeps asking stays rejected."""

    def __init__(self, n):
        self.ts = [None] * n
        self.next = 0

    def exceeded(self, now):
        last = self.ts[self.next]
        self.ts[self.next] = now
        self.next = (self.next + 1) % len(self.ts)
        return last is not None and (now - last) < 1.0


# --------------------------------------------------------------------------
# server state

class Sim:
    def __init__(self, cfg):
        self.lock = threading.RLock()
        self.cfg = cfg
        self.name = cfg.get("name", "zsim")
        self.start = time.time()
        self.secret = os.urandom(32)
        # One installation of several mailbox servers (several simulators): the
        # same "installation" string gives them one token key, and a token minted
        # by another server of it is accepted (one LDAP, one admin token valid on
        # every server: the admin cookie of the configured server works on each).
        self.installation = cfg.get("installation")
        if self.installation:
            self.secret = hashlib.sha256(("zsim-installation:%s" % self.installation).encode()).digest()
        self.mailhost = cfg.get("mailhost", "zsim.local")
        # GetServerRequest / GetAllServersRequest: this server (zimbraServiceHostname =
        # service_host, zimbraAdminPort = the port it listens on) and the other
        # mailbox servers of the installation, [{"name","host","port"}]
        self.service_host = cfg.get("service_host", "127.0.0.1")
        self.port = 0
        self.servers = {str(x["name"]).lower(): x for x in (cfg.get("servers") or [])}
        self.base_date_ms = int(cfg.get("base_date_ms", 1700000000000))
        self.token_lifetime = float(cfg.get("token_lifetime", 43200))
        self.max_results = int(cfg.get("max_results", 5000))
        self.admins = {}
        adm = cfg.get("admin") or {"name": "admin@example.com", "password": "test123"}
        for a in [adm] + list(cfg.get("admins") or []):
            self.admins[a["name"].lower()] = a.get("password", "")
        self.admin_ids = {n: str(uuid.uuid5(uuid.NAMESPACE_DNS, "zsim-admin:%s/%s" % (self.name, n)))
                          for n in self.admins}
        self.tokens = {}
        self.revoked_peer = set()
        self._mbxid = 1
        self.domains = []
        self.accounts = {}
        self.by_id = {}
        self.knobs = {"bandwidth": 0, "import_delay": 0.0, "gzip_level": 0,
                      "export_close_delimited": False, "dos_max_requests_per_sec": 0,
                      "rest_not_admin_port": False}
        # GetVersionInfoRequest: "zimbra" or "carbonio" (config "product")
        self.product = str(cfg.get("product", "zimbra")).lower()
        self.dos_trackers = {}
        self.faults = []
        self.quota_knobs = {"quota_refuse": None, "quota_page_max": 0}   # GetQuotaUsageRequest
        self.down_until = 0.0
        for d in cfg.get("domains") or []:
            self.load_domain(d)
        self.set_knobs(cfg.get("knobs") or {})
        self.reset_stats()

    def next_mbxid(self):
        self._mbxid += 1
        return self._mbxid

    def load_domain(self, d):
        dn = d["name"].lower()
        if dn not in self.domains:
            self.domains.append(dn)
        for spec in d.get("accounts") or []:
            self.add_account(spec, dn)
        if d.get("system_accounts"):
            tag = hashlib.sha1(dn.encode()).hexdigest()[:10]
            self.add_account({"name": "galsync.%s@%s" % (tag, dn), "items": 1,
                              "zimbraIsSystemAccount": True, "zimbraIsSystemResource": True}, dn)
            for p in ("spam", "ham", "virus-quarantine"):
                self.add_account({"name": "%s.%s@%s" % (p, tag, dn), "items": 1,
                                  "zimbraIsSystemResource": True}, dn)
        g = d.get("generate")
        if g:
            seed = g.get("seed", 1)

            def pick(rng, v, dflt):
                if v is None:
                    return dflt
                if isinstance(v, list):
                    return rng.randint(int(v[0]), int(v[1]))
                return int(v)
            for i in range(1, int(g.get("count", 0)) + 1):
                name = "%s%04d@%s" % (g.get("prefix", "user"), i, dn)
                rng = random.Random("%s/%s" % (seed, name))
                n = pick(rng, g.get("items"), 10)
                isz = g.get("item_size", 2048)
                sizes = [pick(rng, isz, 2048) for _ in range(n)]
                self.add_account({"name": name, "sizes": sizes, "folders": g.get("folders"),
                                  "seed": "%s/%s" % (seed, name)}, dn)

    def add_account(self, spec, domain=None):
        name = spec["name"].lower()
        if domain is None:
            domain = name.split("@")[-1]
        if domain not in self.domains:
            self.domains.append(domain)
        if name in self.accounts:
            raise SoapFault("account.ACCOUNT_EXISTS", "email address already exists: %s" % name)
        a = Account(self, name, domain, spec)
        self.accounts[name] = a
        self.by_id[a.id] = a
        return a

    def delete_account(self, name):
        a = self.accounts.pop(name.lower(), None)
        if a:
            self.by_id.pop(a.id, None)
        return a is not None

    def find_account(self, key, by="name"):
        if key is None:
            return None
        key = str(key)
        if by == "id":
            return self.by_id.get(key)
        a = self.accounts.get(key.lower())
        if a is None and by != "id":
            a = self.by_id.get(key)
        return a

    # ---- tokens ----
    def mint_token(self, user):
        exp = now_ms() + int(self.token_lifetime * 1000)
        data = "id=36:%s;exp=13:%d;admin=1:1;type=6:zimbra;nonce=16:%s;" % (
            self.admin_ids.get(user, str(uuid.uuid4())), exp, os.urandom(8).hex())
        hexdata = data.encode().hex()
        mac = hmac.new(self.secret, hexdata.encode(), hashlib.sha1).hexdigest()
        tok = "0_%s_%s" % (mac, hexdata)
        with self.lock:
            self.tokens[tok] = exp
            self.stats["tokens_issued"] += 1
        return tok, exp

    def check_token(self, tok):
        """'ok', 'garbage' or 'expired', plus the expiry in ms."""
        if not tok:
            return "garbage", 0
        parts = tok.split("_")
        if len(parts) != 3 or parts[0] != "0":
            return "garbage", 0
        mac = hmac.new(self.secret, parts[2].encode(), hashlib.sha1).hexdigest()
        if not hmac.compare_digest(mac, parts[1]):
            return "garbage", 0
        try:
            data = bytes.fromhex(parts[2]).decode()
            exp = int(re.search(r"exp=\d+:(\d+);", data).group(1))
        except (ValueError, AttributeError):
            return "garbage", 0
        with self.lock:
            registered = tok in self.tokens or (self.installation and tok not in self.revoked_peer)
        if not registered or now_ms() > exp:
            return "expired", exp
        return "ok", exp

    def revoke(self, tok=None):
        with self.lock:
            if tok:
                if self.installation and tok not in self.tokens:
                    self.revoked_peer.add(tok)
                    return 1
                return 1 if self.tokens.pop(tok, None) is not None else 0
            n = len(self.tokens)
            self.tokens.clear()
            return n

    # ---- knobs and faults ----
    def set_knobs(self, k):
        with self.lock:
            for key in ("bandwidth", "import_delay", "gzip_level", "export_close_delimited",
                        "rest_not_admin_port"):
                if key in k:
                    self.knobs[key] = k[key]
            if "dos_max_requests_per_sec" in k:
                self.knobs["dos_max_requests_per_sec"] = int(k["dos_max_requests_per_sec"] or 0)
                self.dos_trackers = {}
            if "token_lifetime" in k:
                self.token_lifetime = float(k["token_lifetime"])
            if "max_results" in k:
                self.max_results = int(k["max_results"])
            if "down" in k:
                self.down_until = time.time() + float(k["down"])
            if "faults" in k:
                self.faults = [self._fault(f) for f in k["faults"]]
            if "add_faults" in k:
                self.faults += [self._fault(f) for f in k["add_faults"]]
            self.set_quota_knobs(k)
            return self.knobs_view()

    def set_quota_knobs(self, k):
        """quota_refuse (a fault code or null) and quota_page_max (0 = no cap): see
        Handler.soap_GetQuotaUsageRequest."""
        for key in self.quota_knobs:
            if key in k:
                self.quota_knobs[key] = k[key]

    @staticmethod
    def _fault(f):
        f = dict(f)
        f.setdefault("op", "any")
        f.setdefault("action", "status")
        f.setdefault("count", 1)
        f["fired"] = 0
        return f

    def knobs_view(self):
        v = dict(self.knobs)
        v["token_lifetime"] = self.token_lifetime
        v["max_results"] = self.max_results
        v["down_remaining"] = max(0.0, self.down_until - time.time())
        v["faults"] = [dict(f) for f in self.faults]
        v.update(self.quota_knobs)
        return v

    def take_fault(self, op, account=None, request=None):
        with self.lock:
            for f in self.faults:
                if f["count"] == 0:
                    continue
                fop = f["op"]
                if not (fop == op or fop == "any" or (fop == "rest" and op in ("export", "import"))):
                    continue
                if f.get("account") and (account is None or
                                         f["account"].lower() not in account.split()):
                    continue
                if f.get("request") and f["request"] != request:
                    continue
                if f["count"] > 0:
                    f["count"] -= 1
                f["fired"] += 1
                if f["action"] == "down":
                    self.down_until = time.time() + float(f.get("seconds", 1))
                return dict(f)
        return None

    def dos_rejects(self, key, kind):
        """The DoSFilter's verdict on one request of tracker `key` (kind: what the
        tracker is keyed by, for the stats).  Off while dos_max_requests_per_sec is 0."""
        with self.lock:
            n = int(self.knobs.get("dos_max_requests_per_sec") or 0)
            if n <= 0:
                return False
            t = self.dos_trackers.get(key)
            if t is None:
                t = self.dos_trackers[key] = RateTracker(n)
            if not t.exceeded(time.monotonic()):
                return False
            d = self.stats["dos"]
            d["rejected"] += 1
            d["by_tracker"][kind] = d["by_tracker"].get(kind, 0) + 1
            return True

    def is_down(self):
        return time.time() < self.down_until

    # ---- stats ----
    def reset_stats(self):
        with self.lock:
            self.stats = {
                "auth_requests": {"total": 0, "ok": 0, "failed": 0, "by_user": {}},
                "soap": collections.Counter(),
                "soap_faults": collections.Counter(),
                "rest_status": collections.Counter(),
                "exports": {},
                "imports": {},
                "tokens_in_url": 0,
                "basic_auth": 0,
                "tokens_issued": 0,
                "active_streams": 0,
                "misrouted": {"total": 0, "proxied": 0, "by_account": {}},
                "dos": {"rejected": 0, "soap": 0, "rest": 0, "by_tracker": {}},
            }
            self.requests = collections.deque(maxlen=20000)
            for f in self.faults:
                f["fired"] = 0

    def acct_stat(self, section, name):
        s = self.stats[section].get(name)
        if s is None:
            s = {"count": 0, "bytes": 0, "status": {}}
            if section == "exports":
                s["items"] = 0
            else:
                s.update({"added": 0, "skipped": 0, "replaced": 0, "failed": 0, "resolve": {}})
            self.stats[section][name] = s
        return s

    def stats_view(self, log=True, digests=True):
        with self.lock:
            out = {
                "name": self.name, "now_ms": now_ms(),
                "auth_requests": json.loads(json.dumps(self.stats["auth_requests"])),
                "soap": dict(self.stats["soap"]),
                "soap_faults": dict(self.stats["soap_faults"]),
                "rest_status": {str(k): v for k, v in self.stats["rest_status"].items()},
                "exports": json.loads(json.dumps(self.stats["exports"])),
                "imports": json.loads(json.dumps(self.stats["imports"])),
            }
            for k in ("tokens_in_url", "basic_auth", "tokens_issued", "active_streams"):
                out[k] = self.stats[k]
            out["dos"] = json.loads(json.dumps(self.stats["dos"]))
            out["misrouted"] = json.loads(json.dumps(self.stats["misrouted"]))
            out["faults"] = [dict(f) for f in self.faults]
            accts = [(a.name, a, list(a.items.values())) for a in self.accounts.values()]
            reqs = list(self.requests) if log else None
        total_dup = 0
        out["accounts"] = {}
        for name, a, items in accts:
            e = {"id": a.id, "items": len(items), "size": sum(it.size for it in items),
                 "attrs": dict(a.attrs), "mbxid": a.mbxid}
            if digests:
                lines = sorted("%s/%s" % (it.folder, it.get_digest()) for it in items)
                dup = len(lines) - len(set(lines))
                total_dup += dup
                e["fingerprint"] = hashlib.sha256("\n".join(lines).encode()).hexdigest()
                e["duplicates"] = dup
                e["digests"] = lines
            out["accounts"][name] = e
        if digests:
            out["duplicates"] = total_dup
        if log:
            out["requests"] = reqs
        return out


# --------------------------------------------------------------------------
# byte streams

class Throttle:
    def __init__(self, rate):
        self.rate = float(rate or 0)
        self.t0 = time.monotonic()
        self.n = 0

    def account(self, n):
        if self.rate <= 0:
            return
        self.n += n
        ahead = self.n / self.rate - (time.monotonic() - self.t0)
        if ahead > 0:
            time.sleep(ahead)

    def piece(self):
        return max(1024, min(65536, int(self.rate / 20))) if self.rate > 0 else 1 << 20


class BodyReader(io.RawIOBase):
    """The request body (chunked or Content-Length) as a stream."""

    def __init__(self, h, reset_after=None, rate=0):
        super().__init__()
        self.h = h
        self.rfile = h.rfile
        te = (h.headers.get("Transfer-Encoding") or "").lower()
        self.chunked = "chunked" in te
        cl = h.headers.get("Content-Length")
        self.remaining = int(cl) if (cl and not self.chunked) else (0 if not self.chunked else None)
        self.chunk_left = 0
        self.eof = False
        self.count = 0
        self.reset_after = reset_after
        self.throttle = Throttle(rate)

    def readable(self):
        return True

    def _raw(self, n):
        n = min(n, self.throttle.piece())
        if self.chunked:
            if self.chunk_left == 0:
                line = self.rfile.readline(1024)
                if not line:
                    raise EOFError("client closed the chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:   # trailers
                        t = self.rfile.readline(4096)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    self.eof = True
                    return b""
                self.chunk_left = size
            b = self.rfile.read(min(n, self.chunk_left))
            if not b:
                raise EOFError("client closed mid-chunk")
            self.chunk_left -= len(b)
            if self.chunk_left == 0:
                self.rfile.readline(16)
            return b
        if not self.remaining:
            self.eof = True
            return b""
        b = self.rfile.read(min(n, self.remaining))
        if not b:
            raise EOFError("client closed before Content-Length bytes")
        self.remaining -= len(b)
        return b

    def read(self, n=-1):
        if self.eof:
            return b""
        self.h.send_continue()
        if n is None or n < 0:
            parts = []
            while True:
                b = self.read(1 << 20)
                if not b:
                    return b"".join(parts)
                parts.append(b)
        if self.reset_after is not None:
            # hand out the bytes before the cut (they get processed), then reset
            if self.count >= self.reset_after:
                self.h.hard_reset()
            n = min(n, self.reset_after - self.count)
        b = self._raw(n)
        self.count += len(b)
        self.throttle.account(len(b))
        return b

    def readinto(self, buf):
        b = self.read(len(buf))
        buf[:len(b)] = b
        return len(b)

    def drain(self, limit=256 << 20):
        while not self.eof and self.count < limit:
            if not self.read(65536):
                break


class Gunzip:
    """Strict streaming gunzip: raises EOFError on a truncated stream."""

    def __init__(self, src):
        self.src = src
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.buf = b""

    def read(self, n=-1):
        while not self.buf:
            if self.d.eof:
                return b""
            c = self.src.read(65536)
            if not c:
                raise EOFError("unexpected end of ZLIB input stream")
            try:
                self.buf = self.d.decompress(c)
            except zlib.error as e:
                raise EOFError("corrupt gzip stream: %s" % e)
        if n is None or n < 0 or n >= len(self.buf):
            b, self.buf = self.buf, b""
        else:
            b, self.buf = self.buf[:n], self.buf[n:]
        return b

    def drain(self):
        while self.read(1 << 20):
            pass


class MultipartFile:
    """The first file part of a multipart/form-data body, streamed."""

    def __init__(self, src, boundary):
        self.src = src
        self.delim = b"\r\n--" + boundary.encode()
        self.buf = b""
        self.done = False
        # skip preamble up to the first part's headers
        first = b"--" + boundary.encode()
        while True:
            i = self.buf.find(b"\r\n\r\n", self.buf.find(first))
            if self.buf.find(first) >= 0 and i >= 0:
                self.buf = self.buf[i + 4:]
                break
            c = src.read(65536)
            if not c:
                raise EOFError("multipart: no part")
            self.buf += c

    def read(self, n=-1):
        while not self.done:
            i = self.buf.find(self.delim)
            if i >= 0:
                self.buf = self.buf[:i]
                self.done = True
                break
            keep = len(self.delim)
            if len(self.buf) > keep + 65536:
                break
            c = self.src.read(65536)
            if not c:
                raise EOFError("multipart: no closing boundary")
            self.buf += c
        if self.done:
            avail = len(self.buf)
        else:
            avail = max(0, len(self.buf) - len(self.delim))
        if n is None or n < 0:
            n = avail
        n = min(n, avail)
        b, self.buf = self.buf[:n], self.buf[n:]
        return b


class ExportOut:
    """Sink for the gzip stream: chunked/close-delimited, throttled, fault points."""

    def __init__(self, h, chunked, rate, reset_after=None, truncate_after=None):
        self.h = h
        self.chunked = chunked
        self.throttle = Throttle(rate)
        self.reset_after = reset_after
        self.truncate_after = truncate_after
        self.sent = 0
        self.pending = []
        self.plen = 0

    def write(self, b):
        if not b:
            return
        self.pending.append(bytes(b))
        self.plen += len(b)
        if self.plen >= 65536:
            self.flush()

    def flush(self):
        if not self.plen:
            return
        data = b"".join(self.pending)
        self.pending, self.plen = [], 0
        stop = None
        if self.truncate_after is not None and self.sent + len(data) >= self.truncate_after:
            data = data[:max(0, self.truncate_after - self.sent)]
            stop = "truncate"
        if self.reset_after is not None and self.sent + len(data) >= self.reset_after:
            data = data[:max(0, self.reset_after - self.sent)]
            stop = "reset"
        step = self.throttle.piece()
        for i in range(0, len(data), step):
            p = data[i:i + step]
            self._send(p)
            self.throttle.account(len(p))
        if stop == "truncate":
            raise Truncated()
        if stop == "reset":
            self.h.hard_reset()

    def _send(self, p):
        if self.chunked:
            self.h.wfile.write(b"%x\r\n" % len(p) + p + b"\r\n")
        else:
            self.h.wfile.write(p)
        self.sent += len(p)
        self.h.rec["bytes_out"] += len(p)

    def finish(self):
        if self.chunked:
            self.h.wfile.write(b"0\r\n\r\n")


class GzipOut:
    def __init__(self, out, level):
        self.out = out
        self.c = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def write(self, b):
        self.out.write(self.c.compress(b))
        return len(b)

    def close(self):
        self.out.write(self.c.flush())
        self.out.flush()


# --------------------------------------------------------------------------
# HTTP handler

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "zsim"
    sys_version = ""
    timeout = 300

    def log_message(self, fmt, *args):  # our own log line only (tokens redacted)
        pass

    @property
    def sim(self):
        return self.server.sim

    def handle_expect_100(self):
        self._expect = True      # sent lazily when the body is first read
        return True

    def send_continue(self):
        if getattr(self, "_expect", False):
            self._expect = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def hard_reset(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.rfile.close()
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass
        self.rec["status"] = self.rec["status"] or "reset"
        raise ResetConnection()

    # ---- request entry points ----
    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def dispatch(self, method):
        self._expect = getattr(self, "_expect", False)
        self._body_read = False
        u = urllib.parse.urlsplit(self.path)
        self.upath = urllib.parse.unquote(u.path)
        self.query = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        redacted = re.sub(r"(?i)((?:zauthtoken|authtoken)=)[^&]*", r"\1REDACTED", u.query)
        self.rec = {"t": round(time.time() - self.sim.start, 4), "at": time.time(), "method": method,
                    "path": u.path, "query": redacted,
                    "cookie": "Cookie" in self.headers,
                    "auth": None,
                    "te": self.headers.get("Transfer-Encoding"),
                    "content_length": (int(self.headers["Content-Length"])
                                       if (self.headers.get("Content-Length") or "").isdigit() else None),
                    "content_type": self.headers.get("Content-Type"),
                    "status": None, "bytes_in": 0, "bytes_out": 0, "soap": None, "account": None}
        try:
            if self.upath.startswith("/zsim/"):
                self.control(method)
            elif self.sim.is_down():
                self.hard_reset()
            elif self.dos_filter():
                pass
            elif self.upath.rstrip("/") == "/service/admin/soap" or self.upath.startswith("/service/admin/soap/"):
                if method != "POST":
                    self.reply(405, b"method not allowed\n", "text/plain")
                else:
                    self.soap()
            elif re.match(r"^/(service/)?home/", self.upath):
                self.rest(method)
            else:
                self.reply(404, b"not found\n", "text/plain")
        except ResetConnection:
            self.close_connection = True
        except (BrokenPipeError, ConnectionError, ssl.SSLError, socket.timeout, EOFError) as e:
            self.close_connection = True
            self.rec["status"] = self.rec["status"] or "aborted"
            self.rec["error"] = str(e)[:200]
        finally:
            self._expect = False
            self.finish_rec()

    def dos_tracker(self):
        """Which RateTracker a request counts against: Jetty DoSFilter.getRateTracker takes
        extractUserId(request), else the session, else (remotePort = true, as both products
        set it) the client's IP:port.  Zimbra's servlet/DoSFilter.java extractUserId ->
        ZimbraQoSFilter.extractUserId (servlet/ZimbraQoSFilter.java:71-96) reads the auth
        token from the ZM_ADMIN_AUTH_TOKEN cookie only (ZimbraAuthProvider.authToken,
        service/ZimbraAuthProvider.java:68-72), else returns the raw Authorization header.
        So REST with the admin cookie is tracked per admin account (all connections and
        threads together), SOAP with the token in <context> and AuthRequest per TCP
        connection.  (research13/facts.md 1.4-1.5)"""
        ck = self.cookies().get(COOKIE)
        if ck:
            st, _ = self.sim.check_token(ck)
            if st != "garbage":
                try:
                    data = bytes.fromhex(ck.split("_")[2]).decode()
                    return "user:" + re.search(r"id=\d+:([^;]+);", data).group(1), "user"
                except (ValueError, AttributeError, IndexError):
                    pass
        auth = self.headers.get("Authorization")
        if auth:
            return "auth:" + auth, "authorization"
        return "ip:%s:%d" % (self.client_address[0], self.client_address[1]), "ip_port"

    def dos_filter(self):
        """Jetty's DoSFilter in front of /service (store/conf/web.xml.production:14-44 in
        zm-mailbox: delayMs = zimbraHttpDosFilterDelayMillis, default -1 = reject;
        maxRequestsPerSec = zimbraHttpDosFilterMaxRequestsPerSec, default 30, zimbra-attrs.xml
        line 7227; remotePort = true.  Carbonio sets the same in code,
        com/zextras/mailbox/MailboxAPIs.java:77-84, default 100/s).  With delayMs -1 a request
        over the rate is answered at once: response.addHeader("DoSFilter", "unavailable");
        response.sendError(429) (tooManyCode's default), no Retry-After anywhere.
        The knob dos_max_requests_per_sec (0 = off) is maxRequestsPerSec.
        The real server whitelists loopback (127.0.0.1, ::1) and every mailbox server
        (Zimbra servlet/DoSFilter.java:43-64, plus zimbraHttpThrottleSafeIPs): the simulator
        deliberately does not, or no test on 127.0.0.1 could ever be throttled."""
        key, kind = self.dos_tracker()
        if not self.sim.dos_rejects(key, kind):
            return False
        rest = re.match(r"^/(service/)?home/", self.upath) is not None
        with self.sim.lock:
            self.sim.stats["dos"]["rest" if rest else "soap"] += 1
            if rest:
                self.sim.stats["rest_status"]["429"] += 1
        self.rec["dos"] = "unavailable"
        self.rec["dos_tracker"] = kind
        if rest:
            m = re.match(r"^/(?:service/)?home/([^/]+)", self.upath)
            self.rec["account"] = m.group(1).lstrip("~").lower() if m else None
        body = ("<html>\n<head>\n<title>Error 429 Too Many Requests</title>\n</head>\n"
                "<body><h2>HTTP ERROR 429</h2>\n<p>Problem accessing %s. Reason:\n"
                "<pre>    Too Many Requests</pre></p>\n</body>\n</html>\n" % self.upath)
        self.reply(429, body, "text/html;charset=iso-8859-1", headers=[("DoSFilter", "unavailable")])
        return True

    def finish_rec(self):
        r = self.rec
        r["dur"] = round(time.time() - self.sim.start - r["t"], 4)   # seconds, whole request
        with self.sim.lock:
            self.sim.requests.append(r)
        if not self.server.quiet:
            sys.stderr.write("zsim[%s] %s %s%s -> %s in=%d out=%d%s\n" % (
                self.sim.name, r["method"], r["path"], ("?" + r["query"]) if r["query"] else "",
                r["status"], r["bytes_in"], r["bytes_out"],
                (" soap=" + r["soap"]) if r["soap"] else ""))

    def reply(self, status, body=b"", ctype="text/plain; charset=utf-8", headers=None, close=False):
        if isinstance(body, str):
            body = body.encode()
        pending_body = self.command == "POST" and (
            "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            or int(self.headers.get("Content-Length") or 0) > 0)
        if pending_body and not getattr(self, "_body_read", False):
            if self._expect:
                close = True            # the client has not sent the body: close
            else:
                try:
                    BodyReader(self).drain()
                except (EOFError, ValueError):
                    close = True
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or []):
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.rec["status"] = status
        self.rec["bytes_out"] += len(body)

    def reply_json(self, status, obj):
        self.reply(status, json.dumps(obj).encode(), "application/json")

    def read_body(self, limit=16 << 20):
        br = BodyReader(self)
        b = br.read(-1) if br.chunked or br.remaining else b""
        self._body_read = True
        self.rec["bytes_in"] = len(b)
        if len(b) > limit:
            raise ValueError("body too large")
        return b

    def cookies(self):
        out = {}
        for part in (self.headers.get("Cookie") or "").split(";"):
            k, _, v = part.strip().partition("=")
            if k:
                out[k] = v.strip().strip('"')
        return out

    # ---- faults common to SOAP and REST ----
    def apply_fault(self, f, op):
        """Apply a fault that acts before the reply; True if the request is answered."""
        if f is None:
            return False
        a = f["action"]
        if a == "slow":
            time.sleep(float(f.get("seconds", 1)))
            return False
        if a == "down" or (a == "reset" and (op == "soap" or not f.get("after_bytes"))):
            if op == "import" and f.get("after_bytes"):
                return False
            self.hard_reset()
        if a == "status":
            st = int(f.get("status", 500))
            if op == "soap" and st == 500:
                return False    # the SOAP layer sends a real fault
            # "retry_after": seconds (a number) or any text (an HTTP-date), null = none;
            # default: 1 on a 503 (as a proxy in front might send), none otherwise.
            # A 429 carries Jetty DoSFilter's "DoSFilter: unavailable" and no Retry-After.
            ra = f.get("retry_after", 1 if st == 503 else None)
            hdrs = []
            if ra is not None:
                hdrs.append(("Retry-After", str(ra) if not isinstance(ra, float) else "%g" % ra))
            if st == 429:
                hdrs.append(("DoSFilter", "unavailable"))
            self.reply(st, ("zsim: injected HTTP %d\n" % st).encode(), "text/plain", headers=hdrs)
            return True
        return False

    # ---- control endpoints ----
    def control(self, method):
        p = self.upath.rstrip("/")
        sim = self.sim
        if method == "GET" and p == "/zsim/health":
            return self.reply_json(200, {"ok": True, "name": sim.name})
        if method == "GET" and p == "/zsim/stats":
            return self.reply_json(200, sim.stats_view(log=self.query.get("log") != "0",
                                                        digests=self.query.get("digests") != "0"))
        if method != "POST":
            return self.reply(404, b"unknown control endpoint\n")
        try:
            raw = self.read_body()
            body = json.loads(raw or b"{}")
        except (ValueError, EOFError) as e:
            return self.reply(400, ("bad json: %s\n" % e).encode())
        try:
            if p == "/zsim/knobs":
                return self.reply_json(200, sim.set_knobs(body))
            if p == "/zsim/servers":
                # replace the other mailbox servers: {"servers": [{"name","host","port"}]}
                with sim.lock:
                    sim.servers = {str(x["name"]).lower(): x for x in (body.get("servers") or [])}
                return self.reply_json(200, {"servers": len(sim.servers)})
            if p == "/zsim/revoke":
                return self.reply_json(200, {"revoked": sim.revoke(body.get("token"))})
            if p == "/zsim/reset-stats":
                sim.reset_stats()
                return self.reply_json(200, {"ok": True})
            if p == "/zsim/add-items":
                with sim.lock:
                    a = sim.find_account(body.get("account"))
                    if a is None:
                        return self.reply_json(404, {"error": "no such account"})
                    base = now_ms()
                    folder = body.get("folder", "Inbox")
                    a.add_folder(folder)
                    n = int(body.get("n", 1))
                    for j in range(n):
                        a.gen_item(folder, int(body.get("size", a.default_size)), base + j)
                return self.reply_json(200, {"added": n, "date_ms": base})
            if p == "/zsim/add-account":
                with sim.lock:
                    a = sim.add_account(body, body.get("domain"))
                return self.reply_json(200, {"id": a.id})
            if p == "/zsim/set-status":
                with sim.lock:
                    a = sim.find_account(body.get("name", ""))
                    if a is None:
                        return self.reply_json(404, {"error": "no such account"})
                    a.status = str(body.get("status", "active"))
                return self.reply_json(200, {"status": a.status})
            if p == "/zsim/delete-account":
                with sim.lock:
                    return self.reply_json(200, {"deleted": sim.delete_account(body.get("name", ""))})
        except SoapFault as e:
            return self.reply_json(409, {"error": e.text})
        except (KeyError, TypeError, ValueError) as e:
            return self.reply_json(400, {"error": "bad request: %r" % (e,)})
        return self.reply(404, b"unknown control endpoint\n")

    # ---- SOAP ----
    def soap(self):
        sim = self.sim
        fmt = "js"
        try:
            raw = self.read_body()
        except (ValueError, EOFError):
            raise
        self.rec["bytes_in"] = len(raw)
        reqname, req, ctx = None, None, {}
        try:
            s = raw.lstrip()
            if s.startswith(b"{"):
                obj = json.loads(s)
                ctx = jelem(obj.get("Header") or {}, "context") or {}
                body = obj.get("Body")
                if not isinstance(body, dict):
                    raise ValueError("no Body")
                names = [k for k in body if not k.startswith("_")]
                if len(names) != 1:
                    raise ValueError("Body must hold one request")
                reqname = names[0]
                req = body[reqname]
                if isinstance(req, list):
                    req = req[0]
                if not isinstance(req, dict):
                    raise ValueError("request is not an object")
            else:
                root = ET.fromstring(s)
                if root.tag == "{%s}Envelope" % NS_SOAP12:
                    fmt = "soap12"
                elif root.tag == "{%s}Envelope" % NS_SOAP11:
                    fmt = "soap11"
                else:
                    raise ValueError("not a SOAP envelope")
                ns = root.tag[1:].split("}")[0]
                hdr = root.find("{%s}Header" % ns)
                if hdr is not None:
                    c = hdr.find("{urn:zimbra}context")
                    if c is not None:
                        ctx = xml_to_dict(c)
                bd = root.find("{%s}Body" % ns)
                if bd is None or len(bd) != 1:
                    raise ValueError("Body must hold one request")
                reqname = local(bd[0].tag)
                req = xml_to_dict(bd[0])
            ftype = jval(ctx, "format") if not isinstance(ctx.get("format"), (dict, list)) else None
            fel = jelem(ctx, "format")
            if fel and fel.get("type"):
                ftype = fel.get("type")
            if ftype == "xml" and fmt == "js":
                fmt = "soap12"
            elif ftype == "js":
                fmt = "js"
        except (ValueError, ET.ParseError, AttributeError) as e:
            with sim.lock:
                sim.stats["soap"]["(malformed)"] += 1
            return self.soap_fault(fmt, SoapFault("service.INVALID_REQUEST",
                                                  "invalid request: %s" % str(e)[:200]))
        self.rec["soap"] = reqname
        with sim.lock:
            sim.stats["soap"][reqname] += 1
        about = None
        acc = jelem(req, "account")
        if acc:
            about = str(acc.get("_content", "")).lower()
        elif jelem(req, "mbox"):
            about = str(jelem(req, "mbox").get("id", "")).lower()
        elif jval(req, "id"):
            about = str(jval(req, "id")).lower()
        if about:
            a = sim.find_account(about)
            if a:
                about = "%s %s" % (a.name, a.id.lower())
        f = sim.take_fault("soap", about, reqname)
        if self.apply_fault(f, "soap"):
            return
        try:
            if f and f["action"] == "status":
                raise SoapFault(f.get("code", "service.FAILURE"), "system failure: injected fault")
            handler = getattr(self, "soap_" + reqname, None)
            if handler is None:
                raise SoapFault("service.UNKNOWN_DOCUMENT", "unknown document: %s" % reqname)
            extra_headers = []
            if reqname != "AuthRequest":
                self.soap_auth(ctx)
            resp = handler(req, ctx, extra_headers)
        except SoapFault as e:
            return self.soap_fault(fmt, e)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            return self.soap_fault(fmt, SoapFault("service.INVALID_REQUEST",
                                                  "invalid request: %s" % str(e)[:200]))
        rname = reqname[:-len("Request")] + "Response" if reqname.endswith("Request") else reqname + "Response"
        resp["_jsns"] = "urn:zimbraAdmin"
        if fmt == "js":
            out = {"Header": {"context": {"_jsns": "urn:zimbra"}}, "Body": {rname: resp},
                   "_jsns": "urn:zimbraSoap"}
            self.reply(200, json.dumps(out).encode(), "text/javascript; charset=utf-8", extra_headers)
        else:
            ns = NS_SOAP12 if fmt == "soap12" else NS_SOAP11
            env = ET.Element("{%s}Envelope" % ns)
            h = ET.SubElement(env, "{%s}Header" % ns)
            ET.SubElement(h, "context", {"xmlns": "urn:zimbra"})
            b = ET.SubElement(env, "{%s}Body" % ns)
            dict_to_xml(b, rname, resp)
            ET.register_namespace("soap", ns)
            self.reply(200, ET.tostring(env), "text/xml; charset=utf-8", extra_headers)

    def soap_fault(self, fmt, e):
        sim = self.sim
        with sim.lock:
            sim.stats["soap_faults"][e.code] += 1
        self.rec["fault"] = e.code
        receiver = e.code in RECEIVER_CODES
        trace = "qtp-zsim-%d" % threading.get_ident()
        if fmt == "js":
            out = {"Body": {"Fault": {
                "Code": {"Value": "soap:Receiver" if receiver else "soap:Sender"},
                "Reason": {"Text": e.text},
                "Detail": {"Error": {"Code": e.code, "Trace": trace, "_jsns": "urn:zimbra"}},
                "_jsns": "urn:zimbraSoap"}}, "_jsns": "urn:zimbraSoap"}
            return self.reply(e.status, json.dumps(out).encode(), "text/javascript; charset=utf-8")
        esc = lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if fmt == "soap12":
            x = ('<soap:Envelope xmlns:soap="%s"><soap:Body><soap:Fault><soap:Code><soap:Value>%s</soap:Value>'
                 '</soap:Code><soap:Reason><soap:Text>%s</soap:Text></soap:Reason><soap:Detail>'
                 '<Error xmlns="urn:zimbra"><Code>%s</Code><Trace>%s</Trace></Error></soap:Detail>'
                 '</soap:Fault></soap:Body></soap:Envelope>'
                 % (NS_SOAP12, "soap:Receiver" if receiver else "soap:Sender", esc(e.text), e.code, trace))
        else:
            x = ('<soap:Envelope xmlns:soap="%s"><soap:Body><soap:Fault><faultcode>%s</faultcode>'
                 '<faultstring>%s</faultstring><detail><Error xmlns="urn:zimbra"><Code>%s</Code>'
                 '<Trace>%s</Trace></Error></detail></soap:Fault></soap:Body></soap:Envelope>'
                 % (NS_SOAP11, "soap:Server" if receiver else "soap:Client", esc(e.text), e.code, trace))
        return self.reply(e.status, x.encode(), "text/xml; charset=utf-8")

    def ctx_token(self, ctx):
        t = jval(ctx, "authToken")
        if t:
            return str(t)
        return self.cookies().get(COOKIE)

    def soap_auth(self, ctx):
        tok = self.ctx_token(ctx)
        self.rec["auth"] = "header" if jval(ctx, "authToken") else ("cookie" if tok else None)
        if not tok:
            raise SoapFault("service.AUTH_REQUIRED", "no valid authtoken present")
        st, _ = self.sim.check_token(tok)
        if st == "garbage":
            raise SoapFault("service.AUTH_REQUIRED", "no valid authtoken present")
        if st == "expired":
            atc = jelem(ctx, "authTokenControl")
            if atc and truthy(atc.get("voidOnExpired")):
                raise SoapFault("service.AUTH_REQUIRED", "no valid authtoken present")
            raise SoapFault("service.AUTH_EXPIRED", "auth credentials have expired")

    def soap_AuthRequest(self, req, ctx, hdrs):
        sim = self.sim
        tok = jval(req, "authToken")
        if tok:
            st, exp = sim.check_token(str(tok))
            if st == "ok":
                return {"authToken": [{"_content": str(tok)}], "lifetime": max(0, exp - now_ms())}
            if st == "expired":
                raise SoapFault("service.AUTH_EXPIRED", "auth credentials have expired")
            raise SoapFault("service.AUTH_EXPIRED", "authtoken is invalid")
        name = jval(req, "name")
        if name is None:
            acc = jelem(req, "account")
            name = acc.get("_content") if acc else None
        pw = jval(req, "password")
        if not name:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing required attribute: name")
        name = str(name).lower()
        if "@" not in name:
            for n in sim.admins:
                if n.split("@")[0] == name:
                    name = n
        with sim.lock:
            ar = sim.stats["auth_requests"]
            ar["total"] += 1
            ar["by_user"][name] = ar["by_user"].get(name, 0) + 1
        ok = name in sim.admins and pw is not None and hmac.compare_digest(
            str(pw).encode(), sim.admins[name].encode())
        if not ok:
            with sim.lock:
                sim.stats["auth_requests"]["failed"] += 1
            if name not in sim.admins and sim.find_account(name) is not None:
                raise SoapFault("service.PERM_DENIED", "permission denied: not an admin account")
            raise SoapFault("account.AUTH_FAILED", "authentication failed for [%s]" % name)
        with sim.lock:
            sim.stats["auth_requests"]["ok"] += 1
        tok, exp = sim.mint_token(name)
        hdrs.append(("Set-Cookie", "%s=%s; Path=/; Secure; HttpOnly" % (COOKIE, tok)))
        return {"authToken": [{"_content": tok}], "lifetime": max(0, exp - now_ms())}

    def soap_EndSessionRequest(self, req, ctx, hdrs):
        self.sim.revoke(self.ctx_token(ctx))
        return {}

    @staticmethod
    def enc_account(a, attrs=None):
        want = None
        if attrs:
            want = {x.strip().lower() for x in str(attrs).split(",") if x.strip()}
        lst = [{"n": k, "_content": v} for k, v in a.all_attrs().items()
               if want is None or k.lower() in want]
        return {"name": a.name, "id": a.id, "a": lst}

    def soap_SearchDirectoryRequest(self, req, ctx, hdrs):
        sim = self.sim
        domain = jval(req, "domain")
        types = str(jval(req, "types") or "accounts")
        query = jval(req, "query") or ""
        limit = int(jval(req, "limit") or 0)
        offset = int(jval(req, "offset") or 0)
        mr = jval(req, "maxResults")
        max_results = sim.max_results if mr is None else int(mr)
        with sim.lock:
            if domain and str(domain).lower() not in sim.domains:
                raise SoapFault("account.NO_SUCH_DOMAIN", "no such domain: %s" % domain)
            accts = []
            if "accounts" in types.split(","):
                for a in sim.accounts.values():
                    if domain and a.domain != str(domain).lower():
                        continue
                    try:
                        if not ldap_match(query, a.all_attrs()):
                            continue
                    except ValueError as e:
                        raise SoapFault("service.INVALID_REQUEST", "invalid request: bad query: %s" % e)
                    accts.append(a)
            accts.sort(key=lambda a: a.name)
            total = len(accts)
            if max_results > 0 and total > max_results:
                raise SoapFault("account.TOO_MANY_SEARCH_RESULTS",
                                "number of results exceeded the limit: %d" % max_results)
            page = accts[offset:offset + limit] if limit > 0 else accts[offset:]
            return {"account": [self.enc_account(a, jval(req, "attrs")) for a in page],
                    "more": offset + len(page) < total, "searchTotal": total}

    def soap_GetAllAccountsRequest(self, req, ctx, hdrs):
        sim = self.sim
        d = jelem(req, "domain")
        dn = str(d.get("_content")).lower() if d else None
        with sim.lock:
            if dn and dn not in sim.domains:
                raise SoapFault("account.NO_SUCH_DOMAIN", "no such domain: %s" % dn)
            accts = sorted((a for a in sim.accounts.values() if not dn or a.domain == dn), key=lambda a: a.name)
            return {"account": [self.enc_account(a) for a in accts]}

    def lookup(self, el):
        if not el or el.get("_content") is None:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing account")
        by = el.get("by", "name")
        key = str(el["_content"])
        a = self.sim.find_account(key, "id" if by == "id" else "name")
        if a is None:
            raise SoapFault("account.NO_SUCH_ACCOUNT", "no such account: %s" % key)
        return a

    def soap_GetAccountRequest(self, req, ctx, hdrs):
        with self.sim.lock:
            a = self.lookup(jelem(req, "account"))
            return {"account": [self.enc_account(a, jval(req, "attrs"))]}

    def soap_GetMailboxRequest(self, req, ctx, hdrs):
        m = jelem(req, "mbox")
        zid = m.get("id") if m else None
        with self.sim.lock:
            a = self.sim.find_account(zid, "id")
            if a is None:
                raise SoapFault("account.NO_SUCH_ACCOUNT", "no such account: %s" % zid)
            return {"mbox": [{"mbxid": a.mbxid, "s": a.size()}]}

    def soap_GetVersionInfoRequest(self, req, ctx, hdrs):
        """real: service/admin/GetVersionInfo.java: <info type version release buildDate host
        majorversion minorversion microversion platform/>.  How Carbonio fills it is not
        settled by the source read for issue 13: here its version and type name Carbonio."""
        if self.sim.product == "carbonio":
            return {"info": [{"type": "carbonio", "version": "24.9.0_ZEXTRAS_202409 carbonio",
                              "release": "carbonio", "buildDate": "20240901-0000",
                              "host": "zsim", "majorversion": "24", "minorversion": "9",
                              "microversion": "0", "platform": "UBUNTU22_64"}]}
        return {"info": [{"type": "NETWORK", "version": "10.0.0_GA_4500.UBUNTU22_64",
                          "release": "20240101000000", "buildDate": "20240101-0000",
                          "host": "zsim", "majorversion": "10", "minorversion": "0",
                          "microversion": "0", "platform": "UBUNTU22_64"}]}

    def soap_GetQuotaUsageRequest(self, req, ctx, hdrs):
        """The mailbox sizes of many accounts in one request, a page at a time.

        real: zm-mailbox store/src/java/com/zimbra/cs/service/admin/GetQuotaUsage.java
        (commit 2b7f9787), handle(), lines 69-153:
          - attributes: limit (default Integer.MAX_VALUE, 0 = all: 74-76), offset (77),
            domain (78), sortBy (default totalUsed: 79), sortAscending (default false: 80),
            refresh (81).  A sortBy other than totalUsed, percentUsed, quotaLimit or account
            is service.INVALID_REQUEST "sortBy must be percentUsed or totalUsed" (83-84);
          - an unknown domain is account.NO_SUCH_DOMAIN (101-106); with a domain the caller
            needs the domain right getDomainQuotaUsage, without one it must be a system admin
            (108-113; every zsim admin is a system admin);
          - allServers is honoured only together with a domain (115).  The server then sends
            the request to every mail server with allServers=0, limit=0, offset=0
            (delegateRequestToAllServers, 155-219), merges and sorts the answers; one server
            failing fails the whole request with service.FAILURE "Error in getting task
            execution result" (205-206).  Without it, only the accounts homed on the server
            asked (doSearch: searchAccountsOnServer(getLocalServer()), 300);
          - used is the mailbox size, 0 for an account that has no mailbox yet (302, 312-313);
            limit is the effective quota, 0 = unlimited (310);
          - the name-ordered search result is sorted by QuotaComparator (337-367), a stable
            sort; the page is cut from the whole list: more = entries beyond this page,
            searchTotal = the whole list's size (139-152);
          - the list is cached only in an AdminSession (119-137).  Without a SOAP session (as
            zmbatch calls it) every page computes the whole list again; zsim keeps no
            sessions, so every request recomputes it here too (refresh changes nothing).
        One zsim process is ONE mailbox server.  Accounts whose zimbraMailHost is this
        simulator's `mailhost` are homed here; accounts with another mailhost stand for
        accounts of other servers, whose mailboxes this process holds anyway.  So
        allServers=1 with a domain lists every account of the domain, as if each other server
        had answered for its own; without it (or without a domain) only the accounts homed
        here are listed.  A failing other server is modelled by the knob
        quota_refuse = "service.FAILURE", not by a second process.
        Test-only knobs: quota_refuse = a fault code every GetQuotaUsageRequest is refused with
        (service.PERM_DENIED: a delegated admin without getDomainQuotaUsage;
        service.UNKNOWN_DOCUMENT: a server without the handler); quota_page_max = N: at most N
        accounts per answer whatever `limit` asks (a real server cuts pages at `limit` only;
        this makes paging testable with a few accounts)."""
        sim = self.sim
        refuse = sim.quota_knobs.get("quota_refuse")
        if refuse:
            texts = {"service.PERM_DENIED": "permission denied: need right getDomainQuotaUsage",
                     "service.UNKNOWN_DOCUMENT": "unknown document: GetQuotaUsageRequest",
                     "service.FAILURE": "system failure: Error in getting task execution result"}
            raise SoapFault(str(refuse), texts.get(str(refuse), "refused: GetQuotaUsageRequest"))
        lim = jval(req, "limit")
        limit = int(lim) if lim is not None else 2 ** 31 - 1
        if limit == 0:
            limit = 2 ** 31 - 1
        offset = int(jval(req, "offset") or 0)
        domain = jval(req, "domain")
        sort_by = str(jval(req, "sortBy") or "totalUsed")
        ascending = truthy(jval(req, "sortAscending") or False)
        if sort_by not in ("totalUsed", "percentUsed", "quotaLimit", "account"):
            raise SoapFault("service.INVALID_REQUEST", "invalid request: sortBy must be percentUsed or totalUsed")
        dn = str(domain).lower() if domain else None
        all_servers = dn is not None and truthy(jval(req, "allServers") or False)
        with sim.lock:
            if dn is not None and dn not in sim.domains:
                raise SoapFault("account.NO_SUCH_DOMAIN", "no such domain: %s" % domain)
            rows = []
            for a in sorted(sim.accounts.values(), key=lambda x: x.name):
                if dn is not None and a.domain != dn:
                    continue
                if not all_servers and a.mailhost != sim.mailhost:
                    continue
                try:
                    quota = int(a.attrs.get("zimbraMailQuota") or 0)
                except ValueError:
                    quota = 0
                rows.append({"name": a.name, "id": a.id, "used": a.size(), "limit": quota})
            cap = int(sim.quota_knobs.get("quota_page_max") or 0)
        if sort_by == "totalUsed":
            key = lambda r: r["used"]
        elif sort_by == "quotaLimit":
            key = lambda r: r["limit"] if r["limit"] > 0 else 2 ** 63 - 1
        elif sort_by == "account":
            key = lambda r: r["name"].lower()
        else:
            key = lambda r: r["used"] / float(r["limit"]) if r["limit"] > 0 else 0.0
        rows.sort(key=key, reverse=not ascending)   # stable both ways, like Collections.sort
        total = len(rows)
        n = limit if not cap else min(limit, cap)
        page = rows[offset:offset + n] if offset >= 0 else []
        return {"account": page, "more": offset + len(page) < total, "searchTotal": total}

    def soap_ModifyAccountRequest(self, req, ctx, hdrs):
        zid = jval(req, "id")
        with self.sim.lock:
            a = self.sim.find_account(zid, "id")
            if a is None:
                raise SoapFault("account.NO_SUCH_ACCOUNT", "no such account: %s" % zid)
            for x in jlist(req, "a"):
                if x.get("n"):
                    a.attrs[x["n"]] = x.get("_content", "")
            return {"account": [self.enc_account(a)]}

    def soap_CreateAccountRequest(self, req, ctx, hdrs):
        name = jval(req, "name")
        if not name or "@" not in str(name):
            raise SoapFault("service.INVALID_REQUEST", "invalid request: bad account name")
        with self.sim.lock:
            attrs = {x["n"]: x.get("_content", "") for x in jlist(req, "a") if x.get("n")}
            a = self.sim.add_account({"name": str(name), "attrs": attrs})
            return {"account": [self.enc_account(a)]}

    def server_entry(self, name):
        """(zimbraServiceHostname, zimbraAdminPort) of a mailbox server, or None."""
        sim = self.sim
        if name.lower() == sim.mailhost.lower():
            return sim.service_host, sim.port
        e = sim.servers.get(name.lower())
        return (str(e.get("host", "127.0.0.1")), int(e.get("port", 7071))) if e else None

    def enc_server(self, name, hp):
        return {"name": name, "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "zsim-server:" + name.lower())),
                "a": [{"n": "zimbraServiceHostname", "_content": hp[0]},
                      {"n": "zimbraAdminPort", "_content": str(hp[1])},
                      {"n": "zimbraServiceEnabled", "_content": "mailbox"}]}

    def soap_GetServerRequest(self, req, ctx, hdrs):
        """zm-mailbox service/admin/GetServer.java:52-73: the server's attributes
        (zimbraServiceHostname, zimbraAdminPort among them); unknown ->
        account.NO_SUCH_SERVER."""
        srv = req.get("server") or {}
        key = str(jval(srv, "_content") if isinstance(srv, dict) else srv or "")
        hp = self.server_entry(key)
        if hp is None:
            raise SoapFault("account.NO_SUCH_SERVER", "no such server: %s" % key)
        return {"server": [self.enc_server(key, hp)]}

    def soap_GetAllServersRequest(self, req, ctx, hdrs):
        """zm-mailbox service/admin/GetAllServers.java: every server (service=mailbox: the
        mailbox servers), this simulator and its `servers`."""
        names = [self.sim.mailhost] + [str(e["name"]) for e in self.sim.servers.values()]
        return {"server": [self.enc_server(n, self.server_entry(n)) for n in names]}

    def soap_NoOpRequest(self, req, ctx, hdrs):
        return {}

    def rest_remote(self, a, op, tok):
        """REST for an account whose zimbraMailHost is another server.  The real
        server proxies it, without a redirect: zm-mailbox service/UserServlet.java
        doGet 385-395 / doPost 744-751 -> proxyIfRemoteTargetAccount (541-556) ->
        servlet/ZimbraServlet.java proxyServletRequest, to the home server's admin
        URL (getProxyUrl 502-509), copying the cookies and the x-*, content-* and
        authorization headers (382-417).  Answers >= 300 keep their status with a
        new body (425-448).  Modelled here for a home server listed in `servers`
        (else the request is served here, counted as misrouted only):
          - a 204 from the home server has no entity, getEntity() is null and the
            proxy fails with 500 (INFERRED from HttpClient, facts.md 2.2);
          - a POST with Content-Length: the copied header makes httpcore's
            RequestContent throw "Content-Length header already present" -> 500
            (INFERRED, facts.md 2.2); a chunked one is forwarded.
        Every such request is counted in stats misrouted.  True when answered."""
        sim = self.sim
        with sim.lock:
            m = sim.stats["misrouted"]
            m["total"] += 1
            m["by_account"][a.name] = m["by_account"].get(a.name, 0) + 1
        home = sim.servers.get(a.mailhost.lower())
        if not home:
            return False
        with sim.lock:
            sim.stats["misrouted"]["proxied"] += 1
        cl = self.headers.get("Content-Length")
        if op == "import" and cl is not None and "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            self.reply(500, b"proxy: Content-Length header already present\n")
            self.rest_done(op, a.name, 500)
            return True
        body = self.read_body(1 << 30) if op == "import" else None
        import http.client
        conn = http.client.HTTPSConnection(str(home.get("host", "127.0.0.1")), int(home.get("port", 7071)),
                                           context=ssl._create_unverified_context(), timeout=60)
        hdrs = {"Cookie": "%s=%s" % (COOKIE, tok), "X-Zimbra-Hopcount": "1"}
        for k, v in self.headers.items():
            if k.lower().startswith(("x-", "content-")) and k.lower() not in ("content-length",):
                hdrs[k] = v
        try:
            conn.request(self.command, self.path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        if r.status == 204:
            self.reply(500, b"proxy: no entity in the home server's answer\n")
            status = 500
        elif r.status >= 300:
            self.reply(r.status, ("%d %s\n" % (r.status, r.reason)).encode())
            status = r.status
        else:
            self.reply(r.status, data, r.getheader("Content-Type") or "application/octet-stream")
            status = r.status
        self.rest_done(op, a.name, status, len(data) if op == "export" else len(body or b""))
        return True

    # ---- REST ----
    def rest(self, method):
        sim = self.sim
        m = re.match(r"^/(?:service/)?home/([^/]+)(?:/(.*))?$", self.upath)
        acct_name = m.group(1).lstrip("~").lower() if m else ""
        folder = (m.group(2) or "").strip("/") if m else ""
        self.rec["account"] = acct_name
        op = "export" if method in ("GET", "HEAD") else "import"
        with sim.lock:
            a = sim.find_account(acct_name)
        about = "%s %s" % (a.name, a.id.lower()) if a else acct_name
        f = sim.take_fault(op, about)
        if self.apply_fault(f, op):
            return self.rest_done(op, acct_name, self.rec["status"])
        # auth, once, at request start
        ck = self.cookies().get(COOKIE)
        qtok = self.query.get("zauthtoken") or self.query.get("authToken") or self.query.get("authtoken")
        if qtok:
            with sim.lock:
                sim.stats["tokens_in_url"] += 1
        www = [("WWW-Authenticate", 'Basic realm="Zimbra"')]
        tok, how = None, None
        if ck:
            tok, how = ck, "cookie"
        elif qtok:
            tok, how = qtok, "url"
        elif (self.headers.get("Authorization") or "").lower().startswith("basic "):
            how = "basic"
            try:
                user, _, pw = base64.b64decode(self.headers["Authorization"][6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, pw = "", None
            user = user.lower()
            with sim.lock:
                sim.stats["basic_auth"] += 1
            if user in sim.admins and pw is not None and hmac.compare_digest(pw.encode(), sim.admins[user].encode()):
                tok, _ = sim.mint_token(user)
            else:
                self.reply(401, b"must authenticate\n", headers=www)
                return self.rest_done(op, acct_name, 401)
        self.rec["auth"] = how
        if tok is None:
            self.reply(401, b"must authenticate\n", headers=www)
            return self.rest_done(op, acct_name, 401)
        st, _ = sim.check_token(tok)
        if st != "ok":
            self.reply(401, b"auth credentials have expired\n" if st == "expired" else b"invalid auth token\n")
            return self.rest_done(op, acct_name, 401)
        if how == "cookie" and sim.knobs.get("rest_not_admin_port"):
            # real: AuthUtil.isAdminRequest - the ZM_ADMIN_AUTH_TOKEN cookie counts only on
            # the port equal to zimbraAdminPort; elsewhere REST finds no auth token at all
            # and UserServlet.sendError answers 401 for every call (facts.md 7.6)
            self.reply(401, b"must authenticate\n", headers=www)
            return self.rest_done(op, acct_name, 401)
        if a is not None and a.status != "active":
            # real: UserServlet.checkTargetAccountStatus (zm-mailbox service/UserServlet.java
            # 502-516; carbonio-mailbox 388-404): maintenance is refused to everyone
            # (account.MAINTENANCE_MODE "account is in maintenance mode"); locked, closed,
            # pending, lockout pass for an admin token (every token here is an admin's).
            # sendError (345-366): no cookie -> 401 + WWW-Authenticate; cookie + POST -> 401
            # "must authenticate" (no CSRF token); cookie + GET -> 404 with the message.
            if a.status == "maintenance":
                with sim.lock:
                    sim.stats["status_refused"] = sim.stats.get("status_refused", 0) + 1
                if how != "cookie":
                    self.reply(401, b"must authenticate\n", headers=www)
                    return self.rest_done(op, acct_name, 401)
                if op == "import":
                    self.reply(401, b"must authenticate\n")
                    return self.rest_done(op, acct_name, 401)
                self.reply(404, b"account is in maintenance mode\n")
                return self.rest_done(op, acct_name, 404)
        if a is None:
            if how == "cookie":
                self.reply(404, b"no such account\n")
                return self.rest_done(op, acct_name, 404)
            self.reply(401, b"must authenticate\n", headers=www)
            return self.rest_done(op, acct_name, 401)
        if a.mailhost.lower() != sim.mailhost.lower() and self.rest_remote(a, op, tok):
            return
        fmt = self.query.get("fmt", "")
        if fmt != "tgz":
            self.reply(400, ("unsupported format: %s\n" % fmt).encode())
            return self.rest_done(op, acct_name, 400)
        with sim.lock:
            sim.stats["active_streams"] += 1
        try:
            if op == "export":
                self.export(a, folder, f)
            else:
                self.import_(a, folder, f)
        finally:
            with sim.lock:
                sim.stats["active_streams"] -= 1

    def rest_done(self, op, name, status, nbytes=0, **kw):
        sim = self.sim
        with sim.lock:
            sim.stats["rest_status"][str(status)] += 1
            if name in sim.accounts:
                s = sim.acct_stat("exports" if op == "export" else "imports", name)
                s["count"] += 1
                s["bytes"] += nbytes
                s["status"][str(status)] = s["status"].get(str(status), 0) + 1
                if op == "import":
                    # the resolve each import asked for, whatever became of it
                    r = (self.query.get("resolve") or "skip").lower()
                    s["resolve"][r] = s["resolve"].get(r, 0) + 1
                for k, v in kw.items():
                    s[k] = s.get(k, 0) + v

    def export(self, a, folder, f):
        sim = self.sim
        q = self.query
        filtered = False
        types = q.get("types")
        start = end = None
        if types is not None:
            filtered = True
        if q.get("start"):
            filtered = True
            start = parse_date(q["start"])
        if q.get("end"):
            filtered = True
            end = parse_date(q["end"])
        query = q.get("query", "").strip()
        if query:
            filtered = True
            for tokn in query.split():
                k, _, v = tokn.partition(":")
                if k.lower() == "after" and parse_date(v) is not None:
                    start = max(start or 0, parse_date(v) + (1 if not v.isdigit() else 0))
                elif k.lower() == "before" and parse_date(v) is not None:
                    end = parse_date(v)
        with sim.lock:
            items = list(a.items.values())
            folders = list(a.folders)
        if types is not None and not any(t.strip().startswith("message") for t in types.split(",")):
            items = []
        if start is not None:
            items = [it for it in items if it.date > start]
        if end is not None:
            items = [it for it in items if it.date < end]
        if folder:
            items = [it for it in items if it.folder == folder or it.folder.startswith(folder + "/")]
            folders = [x for x in folders if x == folder or x.startswith(folder + "/")]
        if filtered and not items:
            self.reply(204, b"", None)
            return self.rest_done("export", a.name, 204)
        chunked = self.request_version == "HTTP/1.1" and not sim.knobs["export_close_delimited"]
        reset_after = truncate_after = None
        if f and f["action"] == "reset":
            reset_after = int(f.get("after_bytes", 0))
        if f and f["action"] == "truncate":
            truncate_after = int(f.get("after_bytes", 4096))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-compressed-tar")
        self.send_header("Content-Disposition", 'attachment; filename="%s.%s.tgz"' % (
            a.id, time.strftime("%Y%m%d.%H-%M-%S", time.gmtime())))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.rec["status"] = 200
        if self.command == "HEAD":
            return self.rest_done("export", a.name, 200)
        out = ExportOut(self, chunked, sim.knobs["bandwidth"], reset_after, truncate_after)
        gz = GzipOut(out, int(sim.knobs["gzip_level"]))
        status = 200
        try:
            tf = tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT)
            if not filtered:
                for fo in folders:
                    self.tar_add(tf, fo + ".meta", json.dumps({"type": "folder", "path": fo}).encode(), 0)
            for it in items:
                data = it.content()
                if it.digest is None:
                    it.digest = hashlib.sha256(data).hexdigest()
                base = "%s/%010d-%s.eml" % (it.folder, it.id, re.sub(r"[^A-Za-z0-9 ._-]", "_", it.subject)[:40])
                meta = {"id": it.id, "type": "message", "folder": it.folder, "date": it.date,
                        "size": it.size, "digest": it.digest, "subject": it.subject}
                if it.recipe is not None:
                    meta["zsim"] = it.recipe
                self.tar_add(tf, base + ".meta", json.dumps(meta).encode(), it.date)
                self.tar_add(tf, base, data, it.date)
            tf.close()
            gz.close()
        except Truncated:
            status = "truncated"
        except ResetConnection:
            self.rest_done("export", a.name, "reset", out.sent, items=0)
            raise
        except (BrokenPipeError, ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True
            self.rest_done("export", a.name, "aborted", out.sent)
            raise
        if not chunked and status == "truncated":
            pass
        # counted before the last chunk: a client reading /zsim/stats right after the
        # export must see it (race otherwise)
        self.rest_done("export", a.name, status, out.sent, items=len(items))
        out.finish()

    @staticmethod
    def tar_add(tf, name, data, date_ms):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mtime = int(date_ms / 1000)
        ti.mode = 0o644
        tf.addfile(ti, io.BytesIO(data))

    def import_(self, a, url_folder, f):
        """real: ArchiveFormatter.java saveCallback + addItem.  Only messages and folders
        are modelled.  Not modelled: contacts (matched on email + first name + full name,
        only at the root and not with reset), documents (name/version), appointments,
        tasks, tags, search folders; flags/tags that modify rewrites; the `subfolder`
        and `types` parameters; immutable system folders that reset leaves alone."""
        sim = self.sim
        resolve = (self.query.get("resolve") or "skip").lower()
        self.rec["resolve"] = resolve
        if resolve not in ("skip", "modify", "replace", "reset"):
            self.reply(400, ("invalid resolve: %s\n" % resolve).encode())
            return self.rest_done("import", a.name, 400)
        callback = self.query.get("callback")
        if callback is not None and not re.fullmatch(r"[a-zA-Z0-9_.-]+", callback):
            # real: Formatter.java 70, 233-240
            self.reply(400, b"invalid callback\n")
            return self.rest_done("import", a.name, 400)
        warnings = []   # SOAP JS faults, as ArchiveFormatter.addError collects them
        url_folder = re.sub(r"!\d+(?=/|$)", "", url_folder or "").strip("/")
        digests = FolderDigests()

        def place(path, message=True):
            # real addItem: root = fldr (the URL's folder) is ROOT/USER_ROOT, or id.path starts
            # with fldr.getPath() + '/'; path = root ? id.path : fldr.getPath() + id.path.
            # A message's id.path is MailItem.getPath(): its folder's path + "/" (its name is
            # ""), so a message in the URL's folder or below counts as root and keeps its
            # folder; a folder entry's id.path has no trailing "/".
            root = (not url_folder or path.startswith(url_folder + "/")
                    or (message and path == url_folder))
            return root, (path if root else url_folder + "/" + path)

        reset_after = None
        if f and f["action"] == "reset":
            reset_after = int(f.get("after_bytes", 0))
        every = int(f.get("every", 1)) if f and f["action"] == "item_fail" else 0
        # item_fail with "code": each failed item is a warning (addItem -> addError), e.g.
        # formatter.MISSING_BLOB; mail.QUOTA_EXCEEDED is rethrown by addItem (1529-1530) and
        # ends the read loop: one warning, nothing after it imported (saveCallback 946-1002)
        fail_code = f.get("code") if every else None
        fail_reason = f.get("reason") if every else None
        quota_stop = False
        body = BodyReader(self, reset_after, sim.knobs["bandwidth"])
        self._body_read = True
        if f and f["action"] == "import_fail":
            # a fatal error before the read loop (saveCallback 883-887: formatter.INVALID_FORMAT
            # "invalid file format"), reported by Formatter.updateClient: with callback= a 200
            # 'fail' page, without it service.FAILURE -> 500
            body.drain()
            code = f.get("code", "formatter.INVALID_FORMAT")
            reason = f.get("reason", "invalid file format")
            self.rec["bytes_in"] = body.count
            if callback is None:
                self.reply(500, ("%s: %s\n" % (code, reason)).encode(), close=True)
                return self.rest_done("import", a.name, 500, body.count)
            self.reply(200, callback_page(callback, "fail", [js_fault(code, reason, None, "Sender")]),
                       'text/html; charset="utf-8"')
            return self.rest_done("import", a.name, 200, body.count, failed_archive=1)
        src = body
        ctype = self.headers.get("Content-Type") or ""
        counts = {"added": 0, "skipped": 0, "replaced": 0, "failed": 0}
        error = None
        opened = False
        try:
            if ctype.lower().startswith("multipart/"):
                bm = re.search(r'boundary="?([^";]+)"?', ctype)
                if not bm:
                    raise EOFError("multipart without boundary")
                src = MultipartFile(src, bm.group(1))
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                src = Gunzip(src)
            gz = Gunzip(src)
            if resolve == "reset":
                with sim.lock:
                    a.empty_folders(url_folder)
            tf = tarfile.open(fileobj=gz, mode="r|")
            opened = True
            pending = None
            nitems = 0
            for m in tf:
                if not m.isfile():
                    continue
                fo = tf.extractfile(m)
                if m.name.endswith(".meta"):
                    try:
                        meta = json.loads(fo.read(1 << 20))
                    except ValueError:
                        meta = None
                    if isinstance(meta, dict) and meta.get("type") == "folder":
                        with sim.lock:
                            a.add_folder(place(str(meta.get("path", "")).strip("/"), False)[1])
                        pending = None
                    else:
                        pending = (m.name[:-5], meta if isinstance(meta, dict) else None)
                    continue
                h = hashlib.sha256()
                keep = bytearray()
                size = 0
                while True:
                    b = fo.read(1 << 16)
                    if not b:
                        break
                    h.update(b)
                    size += len(b)
                    if size <= MAX_KEEP_DATA:
                        keep += b
                if size != m.size:
                    raise EOFError("unexpected end of data in %s" % m.name)
                digest = h.hexdigest()
                meta = pending[1] if pending and pending[0] == m.name else None
                pending = None
                fold = (meta or {}).get("folder") or os.path.dirname(m.name) or "Inbox"
                fold = re.sub(r"!\d+(?=/|$)", "", fold).strip("/") or "Inbox"
                root, fold = place(fold)
                src_id = (meta or {}).get("id")
                recipe = None
                if meta and meta.get("digest") == digest and isinstance(meta.get("zsim"), dict):
                    recipe = meta["zsim"]
                it = Item(0, fold, int((meta or {}).get("date") or m.mtime * 1000), size,
                          recipe=recipe, data=None if recipe else bytes(keep), digest=digest,
                          subject=(meta or {}).get("subject"))
                nitems += 1
                if every and nitems % every == 0:
                    counts["failed"] += 1
                    if fail_code == "mail.QUOTA_EXCEEDED":
                        warnings.append(js_fault("mail.QUOTA_EXCEEDED", fail_reason or
                                                 "mailbox exceeded quota of 1048576 bytes",
                                                 None, "Sender"))
                        quota_stop = True
                        break
                    if fail_code:
                        warnings.append(js_fault(fail_code, fail_reason or
                                                 "unknown error: %s" % m.name, m.name, "Sender"))
                    continue
                with sim.lock:
                    counts[a.add_imported(it, resolve, root, digests,
                                          src_id if isinstance(src_id, int) else None)] += 1
            if not quota_stop:
                gz.drain()
            body.drain()
        except (tarfile.TarError, EOFError, zlib.error, ValueError, OSError) as e:
            if isinstance(e, (ConnectionError, BrokenPipeError)) or isinstance(e, ssl.SSLError):
                self.rec["bytes_in"] = body.count
                self.rest_done("import", a.name, "aborted", body.count, **counts)
                raise
            error = e
        except ResetConnection:
            self.rec["bytes_in"] = body.count
            self.rest_done("import", a.name, "reset", body.count, **counts)
            raise
        self.rec["bytes_in"] = body.count
        self.rec["import"] = dict(counts)
        if error is not None:
            self.rec["error"] = str(error)[:200]
            if callback is None:
                # deviation: the real server answers 200 here and drops the warning
                # (Formatter.updateClient without callback); the simulator says 500
                self.reply(500, ("formatter.UNKNOWN_ERROR: %s\n" % error).encode(), close=True)
                return self.rest_done("import", a.name, 500, body.count, **counts)
            if not opened:
                # real: an unreadable archive header is fatal before the loop
                # (saveCallback 883-887: formatter.INVALID_FORMAT) -> 'fail'
                self.reply(200, callback_page(callback, "fail", [js_fault(
                    "formatter.INVALID_FORMAT", "invalid file format", None, "Sender")]),
                    'text/html; charset="utf-8"')
                return self.rest_done("import", a.name, 200, body.count, failed_archive=1, **counts)
            # real: the read loop's catch turns it into one warning (no item argument)
            warnings.append(js_fault("formatter.UNKNOWN_ERROR", "unknown error: %s" % error,
                                     None, "Receiver"))
        delay = float(sim.knobs.get("import_delay") or 0)
        if delay > 0:
            time.sleep(delay)
        self.rec["warnings"] = len(warnings)
        # counted BEFORE the answer: a client that reads /zsim/stats right after the 200
        # must see this import's counts (they used to be added after the reply: a race)
        self.rest_done("import", a.name, 200, body.count, warnings=len(warnings), **counts)
        if callback is None:
            self.reply(200, b"", None)   # Formatter.updateClient: warnings dropped
        else:
            self.reply(200, callback_page(callback, "warn" if warnings else "success", warnings),
                       'text/html; charset="utf-8"')


def js_fault(code, reason, item, who="Sender"):
    """SoapJSProtocol.soapFault (zm-mailbox common/.../soap/SoapJSProtocol.java 70-99)."""
    err = {"Code": code, "Trace": "zsim", "_jsns": "urn:zimbra"}
    if item is not None:
        err["a"] = [{"n": "path", "t": "STR", "_content": item}]
    return {"Code": {"Value": "soap:" + who}, "Reason": {"Text": reason},
            "Detail": {"Error": err}}


def callback_page(name, word, faults):
    """Formatter.updateClient with callback= (zm-mailbox service/formatter/Formatter.java
    318-323, 430-453): HTTP 200 text/html, window.parent.NAME('word', FAULT, ...)."""
    out = ["<html>\n<head>\n</head>\n<body onload='onLoad()'>\n<script>\n",
           "function onLoad() {\n    window.parent.%s('%s'" % (name, word)]
    for f in faults:
        out.append(",\n\t" + json.dumps(f))
    out.append(");\n}\n</script>\n</body>\n</html>\n")
    return "".join(out).encode()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, sim, ctx, quiet):
        super().__init__(addr, Handler)
        self.sim = sim
        self.ctx = ctx
        self.quiet = quiet

    def finish_request(self, request, client_address):
        # TLS handshake in the connection's own thread, not in accept()
        try:
            request.settimeout(30)
            # headers and body go out in separate writes: without TCP_NODELAY every
            # small reply waits for the client's delayed ACK (~40 ms per request)
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ss = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(ss, client_address, self)
        except (ssl.SSLError, OSError):
            pass
        finally:
            try:
                ss.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if not self.quiet:
            import traceback
            sys.stderr.write("zsim[%s] error from %s:\n" % (self.sim.name, client_address))
            traceback.print_exc()


def watchdog(die_with_parent, max_lifetime):
    ppid = os.getppid()
    t0 = time.monotonic()
    while True:
        time.sleep(0.3)
        if die_with_parent and os.getppid() != ppid:
            os._exit(0)
        if max_lifetime and time.monotonic() - t0 > max_lifetime:
            sys.stderr.write("zsim: max lifetime reached, exiting\n")
            os._exit(0)


def main():
    ap = argparse.ArgumentParser(description="simulated Zimbra admin server (tests only)")
    ap.add_argument("--config", help="config JSON file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--die-with-parent", action="store_true")
    ap.add_argument("--max-lifetime", type=float, default=0)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    cfg = {}
    if args.config:
        with open(args.config) as fh:
            cfg = json.load(fh)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    sim = Sim(cfg)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    srv = Server((args.host, args.port), sim, ctx, args.quiet)
    port = srv.server_address[1]
    sim.port = port
    if args.die_with_parent or args.max_lifetime:
        threading.Thread(target=watchdog, args=(args.die_with_parent, args.max_lifetime), daemon=True).start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    print("zsim listening on %s:%d" % (args.host, port), flush=True)
    srv.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
