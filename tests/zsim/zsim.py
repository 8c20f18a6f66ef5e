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
DEFAULT_FOLDERS = ["Inbox", "Sent", "Drafts", "Junk", "Trash", "Contacts", "Calendar", "Tasks", "Briefcase"]
# Zimbra's fixed system folder ids (zm-mailbox common/src/java/com/zimbra/common/mailbox/
# FolderConstants.java:25-43: USER_ROOT 1, INBOX 2, TRASH 3, SPAM 4 ("Junk"), SENT 5,
# DRAFTS 6, CONTACTS 7, CALENDAR 10, ROOT 11, TASKS 15, BRIEFCASE 16); user folders take
# ids from the item id space, from FIRST_USER_ID 256 up (zsim starts at 257).  The
# default views are inferred (Mailbox.initialize not read): Trash and USER_ROOT have none.
SYSTEM_FOLDERS = {"Inbox": (2, "message"), "Trash": (3, None), "Junk": (4, "message"),
                  "Sent": (5, "message"), "Drafts": (6, "message"), "Contacts": (7, "contact"),
                  "Calendar": (10, "appointment"), "Tasks": (15, "task"),
                  "Briefcase": (16, "document")}
USER_ROOT_ID = 1
ROOT_ID = 11
# item kinds zsim models (MailItem.Type names as the REST types= and SOAP types= use them)
KINDS = ("message", "contact", "document", "appointment", "task")
CAL_KINDS = ("appointment", "task")
# archive entry extensions, as ArchiveFormatter.saveItem chooses them with meta=1
# (zm-mailbox ArchiveFormatter.java:438-522: appointment "appt", task "task", message "eml",
# contact: none, document: its own name)
KIND_EXT = {"message": ".eml", "appointment": ".appt", "task": ".task", "contact": "", "document": ""}
TIME_UNSPECIFIED = -1     # Formatter.java:65
# Provisioning.sanitizedAttrValue's list (Provisioning.java 466-477), lower case
BLOCKED_ATTRS = {"userpassword", "zimbradatasourcepassword", "zimbrafreebusyexchangeauthpassword",
                 "zimbraucpassword", "zimbratwofactorauthsecret", "zimbratwofactorauthscratchcodes",
                 "zimbraappspecificpassword", "zimbratwofactorauthtrusteddevices",
                 "zimbradatasourceoauthtoken", "zimbradatasourceoauthclientsecret",
                 "zimbradatasourceoauthrefreshtoken", "zimbratwofactorcodeforemail"}

RECEIVER_CODES = {"service.FAILURE", "service.TEMPORARILY_UNAVAILABLE",
                  "account.TOO_MANY_SEARCH_RESULTS"}
XML_ELEMENT_KEYS = {"lifetime", "authToken", "su"}  # encoded as child elements in XML
# urn:zimbraMail requests the admin SOAP endpoint serves: the AdminServlet registers
# AdminService, AccountService AND MailService (zm-mailbox store/conf/web.xml:274-292)
MAIL_REQUESTS = {"GetFolderRequest", "GetTagRequest", "SearchRequest",
                 # urn:zimbraAccount, on the account in the context header like the mail ones
                 "GetSignaturesRequest", "CreateSignatureRequest",
                 "GetIdentitiesRequest", "CreateIdentityRequest"}
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
           "Subject: %s\r\nDate: %s\r\nMessage-ID: <%d.%s@zsim.invalid>\r\n"
           "Content-Type: application/octet-stream\r\n\r\n"
           % (k, i, i % 17, k, r.get("s") or ("zsim item %d of %s" % (i, k)),
              email.utils.formatdate(d / 1000.0, usegmt=True),
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


def gen_other(it):
    """The content of a generated non-message item (appointment, task, contact, document):
    a small deterministic text naming its fields (plus `size` bytes for a document), so an
    edit (subject, revision, version) changes the digest.  Not the real blob formats
    (iCalendar in a MIME blob, vCard, the document's bytes): zsim compares digests only."""
    x = it.extra or {}
    hdr = ("X-Zsim-Kind: %s\r\nSubject: %s\r\nUID: %s\r\nStart: %s\r\nEnd: %s\r\nRev: %d\r\n"
           "Email: %s\r\nFirstName: %s\r\nFullName: %s\r\nName: %s\r\nVer: %s\r\n\r\n"
           % (it.type, it.subject, x.get("uid", ""), x.get("start", ""), x.get("end", ""), it.rev,
              x.get("email", ""), x.get("firstName", ""), x.get("fullName", ""), x.get("name", ""),
              x.get("ver", ""))).encode()
    n = int(x.get("body", 0))
    if n <= 0:
        return hdr
    off = int.from_bytes(hashlib.sha256(hdr).digest()[:4], "big") % len(BLOCK)
    out = bytearray(hdr)
    while n > 0:
        piece = BLOCK[off:off + n]
        out += piece
        n -= len(piece)
        off = 0
    return bytes(out)


def sec_ms(ms):
    """Item dates are whole seconds: MailItem.UnderlyingData.date is "Seconds since
    1970-01-01" (zm-mailbox store/.../mailbox/MailItem.java:302) and getDate() returns
    date * 1000L (MailItem.java:999)."""
    ms = int(ms)
    return ms - ms % 1000


class Item:
    __slots__ = ("id", "folder", "date", "size", "digest", "recipe", "data", "subject",
                 "type", "rev", "extra")

    def __init__(self, iid, folder, date, size, recipe=None, data=None, digest=None, subject=None,
                 type="message", extra=None, rev=1):
        self.id = iid
        self.folder = folder
        self.date = sec_ms(date)
        self.size = size
        self.recipe = recipe
        self.data = data
        self.digest = digest
        self.subject = subject or ((recipe.get("s") or "zsim item %s" % recipe["i"]) if recipe
                                   else "zsim item %s" % iid)
        self.type = type
        self.rev = rev
        self.extra = extra      # kind-specific fields: uid, start, end, email, firstName, ...

    def x(self, key, dflt=None):
        return (self.extra or {}).get(key, dflt)

    def content(self):
        if self.data is not None:
            return self.data
        if self.recipe is not None:
            return gen_item(self.recipe)
        if self.type != "message":
            return gen_other(self)
        return b""

    def get_digest(self):
        if self.digest is None:
            self.digest = hashlib.sha256(self.content()).hexdigest()
        return self.digest

    def meta(self):
        """The item's .meta JSON in a zsim archive (real: ItemData.encode, a Metadata blob)."""
        m = {"id": self.id, "type": self.type, "folder": self.folder, "date": self.date,
             "size": self.size, "digest": self.get_digest(), "subject": self.subject, "rev": self.rev}
        for k, v in (self.extra or {}).items():
            if k != "body":
                m[k] = v
        if self.recipe is not None:
            m["zsim"] = self.recipe
        return m

    def view(self):
        """GET /zsim/items row."""
        v = self.meta()
        v.pop("zsim", None)
        return v


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
        # the account's COS by name (config "cos"), stored as zimbraCOSId like the real entry
        if spec.get("cos"):
            self.attrs["zimbraCOSId"] = sim.cos_id(spec["cos"])
        # signatures / identities other than the account's own (LDAP child entries):
        # config "signatures": [{"name", "id"?, "text"?, "html"?}],
        # "identities": [{"name", "id"?, "attrs"?}]
        self.signatures = []
        for sg in spec.get("signatures") or []:
            c = []
            if sg.get("text") is not None:
                c.append({"type": "text/plain", "_content": sg["text"]})
            if sg.get("html") is not None:
                c.append({"type": "text/html", "_content": sg["html"]})
            self.signatures.append({"name": sg["name"], "id": sg.get("id") or str(uuid.uuid4()),
                                    "content": c})
        self.identities = []
        for it in spec.get("identities") or []:
            at = dict(it.get("attrs") or {})
            at.setdefault("zimbraPrefIdentityName", it["name"])
            at["zimbraPrefIdentityId"] = it.get("id") or at.get("zimbraPrefIdentityId") or str(uuid.uuid4())
            self.identities.append({"name": it["name"], "id": at["zimbraPrefIdentityId"], "attrs": at})
        # aliases (config "aliases"): zimbraMailAlias + mail, as AddAccountAlias leaves them
        for al in spec.get("aliases") or []:
            sim.aliases[str(al).lower()] = self.name
            self.attrs.setdefault("zimbraMailAlias", []).append(str(al).lower())
        self.sys_account = bool(spec.get("zimbraIsSystemAccount"))
        self.sys_resource = bool(spec.get("zimbraIsSystemResource"))
        self.mbxid = sim.next_mbxid()
        self.folders = []
        self.folder_ids = {}     # path -> folder id (system folders: fixed ids)
        self.folder_views = {}   # path -> default view or None
        self.items = {}          # id -> Item, in insertion order
        self.next_id = 257
        self.next_gen = 0
        self.base_date_ms = sim.base_date_ms
        for f in DEFAULT_FOLDERS:
            self.add_folder(f)
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
        self.load_kinds(spec)

    def load_kinds(self, spec):
        """Items of other kinds from the account spec (README "Item kinds")."""
        for kind, key in (("appointment", "appointments"), ("task", "tasks"),
                          ("contact", "contacts"), ("document", "documents")):
            v = spec.get(key)
            if v is None:
                continue
            if isinstance(v, int):
                v = [{} for _ in range(v)]
            for d in v:
                self.add_kind(kind, d)

    def add_kind(self, kind, d, date=None):
        """One appointment/task/contact/document (or message) from a spec dict; returns it."""
        if kind not in KINDS:
            raise ValueError("unknown item type: %s" % kind)
        j = self.next_gen
        if date is None:
            date = d.get("date", self.base_date_ms + j * 60000)
        if kind == "message":
            folder = d.get("folder", "Inbox")
            self.add_folder(folder)
            it = self.gen_item(folder, int(d.get("size", self.default_size)), date)
            if d.get("subject"):
                it.recipe["s"] = str(d["subject"])
                it.subject = str(d["subject"])
            return it
        self.next_gen += 1
        dflt = {"appointment": "Calendar", "task": "Tasks", "contact": "Contacts",
                "document": "Briefcase"}[kind]
        folder = str(d.get("folder", dflt)).strip("/")
        self.add_folder(folder)
        iid = self.next_id
        x = {}
        if kind in CAL_KINDS:
            x["uid"] = str(d.get("uid") or "zsim-%s-%s-%d" % (kind, hashlib.sha1(
                self.name.encode()).hexdigest()[:8], iid))
            if kind == "appointment" or d.get("start") is not None:
                st = int(d.get("start", date))
                x["start"] = st
                x["end"] = int(d.get("end", st + 3600000))
            if kind == "task" and d.get("end") is not None and "end" not in x:
                x["end"] = int(d["end"])
        elif kind == "contact":
            x["email"] = str(d.get("email", "contact%d.%s" % (iid, self.name)))
            x["firstName"] = str(d.get("firstName", "First%d" % iid))
            x["fullName"] = str(d.get("fullName", "First%d Last" % iid))
        else:
            x["name"] = str(d.get("name", "doc%d.bin" % iid))
            x["ver"] = int(d.get("ver", 1))
            x["body"] = int(d.get("size", 1024))
        subject = str(d.get("subject") or (x.get("fullName") if kind == "contact" else
                                           x.get("name") if kind == "document" else
                                           "zsim %s %d" % (kind, iid)))
        it = Item(iid, folder, date, 0, subject=subject, type=kind, extra=x)
        it.size = len(gen_other(it))
        self.next_id += 1
        self.items[it.id] = it
        return it

    def add_folder(self, f, view=None):
        f = f.strip("/")
        parts = f.split("/")
        for k in range(1, len(parts) + 1):
            p = "/".join(parts[:k])
            if p and p not in self.folder_ids:
                self.folders.append(p)
                if k == 1 and p in SYSTEM_FOLDERS:
                    self.folder_ids[p], self.folder_views[p] = SYSTEM_FOLDERS[p]
                else:
                    self.folder_ids[p] = self.next_id
                    self.next_id += 1
                    self.folder_views[p] = view if k == len(parts) else None

    def folder_by_id(self, fid):
        for p, i in self.folder_ids.items():
            if i == fid:
                return p
        return None

    def in_trash(self, path):
        """getTrashFolders: Trash and its subfolders (DBQueryOperation.ensureSpamTrashSetting)."""
        return path == "Trash" or path.startswith("Trash/")

    def gen_item(self, folder, size, date):
        r = {"k": self.name, "i": self.next_gen, "n": size, "d": sec_ms(date)}
        self.next_gen += 1
        it = Item(self.next_id, folder, date, size, recipe=r)
        self.next_id += 1
        self.items[it.id] = it
        return it

    def edit_item(self, it, subject=None, start=None, end=None):
        """/zsim/edit-item: a new revision.  A message gets new content (as a draft save
        does; real messages are otherwise immutable), a calendar item / contact a new
        revision with the new fields, a document a new version (ver + 1)."""
        it.rev += 1
        if subject is not None:
            it.subject = str(subject)
        if it.type == "message":
            if it.recipe is not None:
                it.recipe = dict(it.recipe, s=it.subject + ("" if subject is not None else " r%d" % it.rev))
                it.subject = it.recipe["s"]
                it.size = len(gen_item(it.recipe))
            else:
                it.data = ("Subject: %s\r\nX-Zsim-Rev: %d\r\n" % (it.subject, it.rev)).encode() + (it.data or b"")
                it.size = len(it.data)
        else:
            x = dict(it.extra or {})
            if start is not None:
                x["start"] = int(start)
            if end is not None:
                x["end"] = int(end)
            if it.type == "document":
                x["ver"] = int(x.get("ver", 1)) + 1
            it.extra = x
            it.data = None
            it.size = len(gen_other(it))
        it.digest = None

    def _new_id(self, it):
        it.id = self.next_id
        self.next_id += 1
        self.items[it.id] = it

    def folder_digests(self, folder):
        """digest -> item id of the messages now in `folder` (real: Mailbox.getDigestsForItems)."""
        return {o.get_digest(): o.id for o in self.items.values()
                if o.folder == folder and o.type == "message"}

    def empty_folders(self, under, types=None):
        """resolve=reset: delete every item in `under` and its subfolders ("" = the whole mailbox).
        real: ArchiveFormatter.saveCallback, Resolve.Reset loop over fldr.getSubfolderHierarchy()
        (ArchiveFormatter.java:893-939); with types= only items of those types (907-911)."""
        for k in [k for k, o in self.items.items()
                  if (not under or o.folder == under or o.folder.startswith(under + "/"))
                  and (types is None or o.type in types)]:
            del self.items[k]

    def add_imported_other(self, it, resolve, root, st, carbonio):
        """Store one imported appointment, task, contact or document as
        ArchiveFormatter.addItem does (zm-mailbox store/src/java/com/zimbra/cs/service/
        formatter/ArchiveFormatter.java, commit 2b7f9787).  Returns 'added', 'skipped',
        'replaced', 'modified' or 'unsupported'.  st = this import's state (contact lists
        read once per folder, the document idMap).

        APPOINTMENT / TASK (1132-1184): the folder path is created (1136); unless the import
        is at the root with reset (1137), the old item is mbox.getCalendarItemByUid(uid)
        (1141): matched by UID alone, anywhere in the mailbox, whatever its folder or type.
        replace deletes it and sets the new one in the destination folder (1144-1145);
        skip with an old item does nothing (1150); modify re-sets the SAME calendar item
        (same id) from the archive, in the OLD item's folder (1178-1179: oldItem != null &&
        r == Modify ? oldItem.getFolderId() : fldr.getId()); no old item: set in the
        destination folder.
        CONTACT (1228-1260): only at the root and not with reset (1232): findContact
        (1553-1575) looks in the destination folder's contact list, read once per folder per
        import (the `contacts` cache, cleared at the end: 1000), for a contact sharing an
        email address; it counts only if email, firstName and fullName are all equal
        (1237-1244): replace deletes it and creates the new one, modify rewrites it in place
        (1250), skip leaves it.  Otherwise a new contact is created (1256-1258): an equal
        contact outside the root, or with reset, is duplicated.
        DOCUMENT (1262-1315): the parent folder is created (1268); the archive id is looked up
        in this import's idMap (1266), else the folder's documents are searched by name
        (1271-1277, live: not cached).  Found: replace (first time) deletes it and creates the
        new one (1284-1285); an archived version older than the target's is ignored (1286-1287);
        a newer one adds a revision to the old document (1290-1293, 'modified'); equal
        versions leave it ('skipped'; modify/replace-after-idMap only reset its date, 1295-1296).
        Carbonio (zextras/carbonio-mailbox ArchiveFormatter.java, commit 0385232e, addItem
        1269-1683; MailItem.constructItem 1796-1825 has no TASK nor DOCUMENT case and returns
        null): a task or document entry makes addItem throw (mi.getType() on null) and the
        catch (1674-1681) adds formatter.UNKNOWN_ERROR for the entry: not imported, a warning
        ('unsupported')."""
        kind = it.type
        if carbonio and kind in ("task", "document"):
            return "unsupported"
        if kind in CAL_KINDS:
            self.add_folder(it.folder)
            old = None
            if not (root and resolve == "reset"):
                uid = it.x("uid")
                for o in self.items.values():
                    if o.type in CAL_KINDS and o.x("uid") == uid:
                        old = o
                        break
            if old is not None and resolve == "replace":
                del self.items[old.id]
                self._new_id(it)
                return "replaced"
            if old is not None and resolve == "skip":
                return "skipped"
            if old is not None and resolve == "modify":
                old.subject, old.extra, old.rev = it.subject, it.extra, it.rev
                old.data, old.digest, old.size, old.type = it.data, it.digest, it.size, it.type
                old.date = it.date
                return "modified"
            if old is not None:
                # reset, not at the root: the lookup still ran (1137) and setCalendarItem gets
                # the destination folder (1178-1179) for the existing UID: updated and moved
                # there (inferred: setCalendarItem's move not read)
                old.subject, old.extra, old.rev = it.subject, it.extra, it.rev
                old.data, old.digest, old.size = it.data, it.digest, it.size
                old.folder = it.folder
                return "modified"
            self._new_id(it)
            return "added"
        if kind == "contact":
            self.add_folder(it.folder)
            if root and resolve != "reset":
                lst = st["contacts"].get(it.folder)
                if lst is None:
                    lst = st["contacts"][it.folder] = [o for o in self.items.values()
                                                       if o.type == "contact" and o.folder == it.folder]
                old = None
                for o in lst:
                    if o.x("email") == it.x("email"):
                        old = o
                        break
                if old is not None and all(old.x(k, "") == it.x(k, "")
                                           for k in ("email", "firstName", "fullName")):
                    if resolve == "replace":
                        self.items.pop(old.id, None)
                        self._new_id(it)
                        return "replaced"
                    if old.id not in self.items:
                        # the cached list still names a contact replace deleted: modifyContact
                        # throws NO_SUCH_ITEM -> addError (inferred)
                        return "failed"
                    if resolve == "modify":
                        old.subject, old.extra, old.rev = it.subject, it.extra, it.rev
                        old.data, old.digest, old.size = it.data, it.digest, it.size
                        return "modified"
                    return "skipped"
            self._new_id(it)
            return "added"
        if kind == "document":
            self.add_folder(it.folder)
            src = it.x("src_id")
            old_id = st["idmap"].get(src) if src is not None else None
            old = None
            if old_id is None:
                for o in self.items.values():
                    if o.type == "document" and o.folder == it.folder and o.x("name") == it.x("name"):
                        old = o
                        if src is not None:
                            st["idmap"][src] = o.id
                        break
            else:
                old = self.items.get(old_id)
            if old is not None:
                if resolve == "replace" and old_id is None:
                    del self.items[old.id]
                else:
                    if int(it.x("ver", 1)) < int(old.x("ver", 1)):
                        return "skipped"
                    if int(it.x("ver", 1)) > int(old.x("ver", 1)):
                        # addDocumentRevision: version old + 1, the archive's content
                        old.extra = dict(old.extra or {}, ver=int(old.x("ver", 1)) + 1)
                        old.subject, old.data, old.digest, old.size = it.subject, it.content(), None, it.size
                        return "modified"
                    if resolve != "skip":
                        old.date = it.date
                    return "skipped"
                self._new_id(it)
                if src is not None:
                    st["idmap"][src] = it.id
                return "replaced"
            self._new_id(it)
            if src is not None:
                st["idmap"][src] = it.id
            return "added"
        return "unsupported"

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

def verify_password(stored, password):
    """PasswordUtil.SSHA.verifySSHA / SSHA512.verifySSHA512 (store/src/java/com/zimbra/cs/
    account/auth/PasswordUtil.java 38-130): base64(digest(password + salt) + salt), the salt
    4 bytes for SSHA (8 when the whole is 28 bytes), 8 for SSHA512."""
    if isinstance(stored, list):
        stored = stored[0] if stored else ""
    for tag, algo, slen in (("{SSHA512}", hashlib.sha512, 8), ("{SSHA}", hashlib.sha1, 4)):
        if stored.startswith(tag):
            try:
                buf = base64.b64decode(stored[len(tag):])
            except ValueError:
                return False
            if len(buf) <= slen:
                return False
            if tag == "{SSHA}" and len(buf) == 28:
                slen = 8
            salt = buf[-slen:]
            return hmac.compare_digest(algo(password.encode() + salt).digest() + salt, buf)
    return hmac.compare_digest(stored.encode(), password.encode())


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
# the mailbox search subset that exports and SearchRequest use

def query_date(v):
    """(begin_ms, end_ms) of a date term value as DateQuery.parseDate reads it
    (zm-mailbox store/src/java/com/zimbra/cs/index/query/DateQuery.java:264-371): all digits
    = ms with end = begin + 1000 ("+1000 since SQL time is sec", 265-270); mm/dd/yyyy = that
    day (UTC here; the real one uses the request's time zone) with end = the next day."""
    v = v.strip().strip('"')
    if re.fullmatch(r"\d+", v):
        b = int(v)
        return b, b + 1000
    b = parse_date(v)
    if b is None:
        raise SoapFault("mail.QUERY_PARSE_ERROR", "Couldn't parse query: bad date %s" % v)
    return b, b + 86400000


def parse_query(qs):
    """The subset of the search grammar zsim understands, as constraints:
      is:local        every local folder (InQuery LOCAL -> DBQueryOperation.addIsLocalClause,
                      expanded to all folders; Trash/Junk are still excluded, below)
      is:anywhere     every folder INCLUDING Trash and Junk (BuiltInQuery "anywhere" ->
                      DbSearchConstraints.addAnyFolder 911-920: forceHasSpamTrashSetting)
      in:P / under:P  that folder / that folder and its subfolders (a leading "/" optional)
      after:X         date >= end(X)   (DateQuery 382-385, 429-433: AFTER -> lowest =
                      endDate, inclusive; for ms X that is X + 1000)
      before:X        date < begin(X)  (378-381, 417-421)
      appt-start:>=X  appointment start >= X; appt-end:<X  appointment end < X
                      (explicit comparators, 197-223; 405-433)
    Dates compare as DbSearch does: mi.date in SECONDS against range/1000
    (store/src/java/com/zimbra/cs/db/DbSearch.java:438, 1093-1096); appointment start/end
    are ms timestamps (ap.start_time / ap.end_time, 451-456, 1098-1100).
    Anything else is not modelled: mail.QUERY_PARSE_ERROR (a simulator limit, not the real
    answer: the real server would search the text)."""
    c = {"folders": [], "anywhere": False, "lo": None, "hi": None, "alo": None, "ahi": None,
         "terms": 0}
    for tok in re.findall(r'(?:[^\s"]+(?:"[^"]*")?)+|"[^"]*"', qs or ""):
        k, sep, v = tok.partition(":")
        k = k.lower()
        if not sep:
            raise SoapFault("mail.QUERY_PARSE_ERROR", "zsim: query term not modelled: %s" % tok)
        c["terms"] += 1
        if k == "is" and v.lower() == "local":
            continue
        if k == "is" and v.lower() == "anywhere":
            c["anywhere"] = True
        elif k in ("in", "under"):
            path = v.strip('"').strip("/")
            for sysname in SYSTEM_FOLDERS:        # in:inbox, in:junk ... (names are case-less)
                if path.lower() == sysname.lower() or path.lower().startswith(sysname.lower() + "/"):
                    path = sysname + path[len(sysname):]
            c["folders"].append((path, k == "under"))
        elif k == "after":
            lo = query_date(v)[1]
            c["lo"] = lo if c["lo"] is None else max(c["lo"], lo)
        elif k == "before":
            hi = query_date(v)[0]
            c["hi"] = hi if c["hi"] is None else min(c["hi"], hi)
        elif k == "appt-start" and v.startswith(">="):
            c["alo"] = int(query_date(v[2:])[0])
        elif k == "appt-end" and v.startswith("<"):
            c["ahi"] = int(query_date(v[1:])[0])
        else:
            raise SoapFault("mail.QUERY_PARSE_ERROR", "zsim: query term not modelled: %s" % tok)
    return c


def query_match(c, a, it, inc_trash=False, inc_spam=False):
    """Does item `it` of account `a` match the parsed query `c`?  Trash (and its
    subfolders) and Junk are excluded unless the query has is:anywhere or names them
    (ZimbraQuery.java:586-635: includeTrash/includeSpam are the AUTHENTICATED account's
    zimbraPrefIncludeTrashInSearch / zimbraPrefIncludeSpamInSearch, default FALSE,
    zimbra-attrs.xml 611-620 -- for zmbatch that is the admin; parseTreeIncludesFolder
    turns them on for a query naming Trash/Junk; DBQueryOperation.ensureSpamTrashSetting
    199-221).  Knobs include_trash_in_search / include_spam_in_search are those prefs."""
    for path, sub in c["folders"]:
        if not (it.folder == path or (sub and it.folder.startswith(path + "/"))):
            return False
    if not c["anywhere"]:
        named = [p for p, _ in c["folders"]]
        if a.in_trash(it.folder) and not inc_trash and not any(a.in_trash(p) for p in named):
            return False
        if it.folder == "Junk" and not inc_spam and "Junk" not in named:
            return False
    d = it.date // 1000
    if c["lo"] is not None and d < c["lo"] // 1000:
        return False
    if c["hi"] is not None and d >= c["hi"] // 1000:
        return False
    if c["alo"] is not None or c["ahi"] is not None:
        if it.type != "appointment" or it.x("start") is None:
            return False
        # encodeRange cutoff 1 (DbSearch 1112-1117): a bound below 1 is no bound
        if c["alo"] is not None and c["alo"] >= 1 and int(it.x("start")) < c["alo"]:
            return False
        if c["ahi"] is not None and c["ahi"] >= 1 and int(it.x("end")) >= c["ahi"]:
            return False
    return True


def cal_instances(it, start, end):
    """CalendarItem.expandInstances(start, end) is non-empty (zm-mailbox store/.../mailbox/
    CalendarItem.java:964-1035, non-recurring item: one instance if invStart < end &&
    invEnd > start, or always when the invite has no DTSTART (1007); then removed if it has
    start and end and instEnd <= start || instStart >= end (1022-1032)).  start/end are the
    export's, TIME_UNSPECIFIED (-1) when absent: so with start= but no end= NO appointment
    (nor dated task) survives (invStart < -1 is false).  A task without a start is kept in
    every window.  A task with a start and no end: its effective end is taken as its start
    (inferred: Invite.getEffectiveEndTime for a VTODO without DUE not read)."""
    st = it.x("start")
    if st is None:
        return True
    st = int(st)
    en = int(it.x("end", st))
    return st < end and en > start


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
        # this server's zimbraLmtpBindPort in GetServerRequest (None: not in the answer, as a
        # server that inherits the global config's 7025 would not be with applyConfig=0)
        self.lmtp_port = cfg.get("lmtp_port")
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
        self.domain_attrs = {}   # domain -> its attributes (config "attrs"; CreateDomainRequest)
        self.accounts = {}
        self.by_id = {}
        self.aliases = {}        # alias address -> account name (AddAccountAliasRequest)
        # static distribution lists, name -> {"id", "name", "domain", "attrs", "members"};
        # config domains[].lists [{"name", "id"?, "attrs"?, "members"?, "aliases"?}]
        self.lists = {}
        self.list_aliases = {}   # alias address -> list name (AddDistributionListAliasRequest)
        # classes of service, name -> zimbraId; "default" always exists (a fresh
        # installation has it: Provisioning.DEFAULT_COS_NAME); config "cos": [{"name", "id"?}]
        self.coses = {}
        self.cos_attrs = {}      # name -> its attributes (config "attrs"; CreateCosRequest)
        for c in [{"name": "default"}] + list(cfg.get("cos") or []):
            cn = str(c["name"]).lower()
            self.coses[cn] = c.get("id") or str(
                uuid.uuid5(uuid.NAMESPACE_DNS, "zsim-cos:%s/%s" % (self.name, cn)))
            self.cos_attrs[cn] = dict(c.get("attrs") or {})
        self.knobs = {"bandwidth": 0, "import_delay": 0.0, "gzip_level": 0,
                      "export_close_delimited": False, "dos_max_requests_per_sec": 0,
                      "rest_not_admin_port": False,
                      # zimbraExportMaxDays of the COS (an account's own attr wins); 0 = off
                      "export_max_days": 0,
                      # the admin's zimbraPrefIncludeTrashInSearch / ...SpamInSearch
                      "include_trash_in_search": False, "include_spam_in_search": False,
                      # CreateAccountRequest refuses a zimbraId in its attributes, as
                      # carbonio-mailbox 4.0.7-4.12.0 do (commit 60dcbc7fe4, undone in 4.14.0 by
                      # 2f5e8c5906): store/src/main/java/com/zimbra/cs/service/admin/
                      # CreateAccount.java:58-62 at tag 4.12.0
                      "refuse_zimbra_id": False}
        # GetVersionInfoRequest: "zimbra" or "carbonio" (config "product")
        self.product = str(cfg.get("product", "zimbra")).lower()
        self.dos_trackers = {}
        self.admin_mailboxes = {}   # an admin's own (empty) mailbox, for mail SOAP without <account>
        self.faults = []
        self.quota_knobs = {"quota_refuse": None, "quota_page_max": 0}   # GetQuotaUsageRequest
        self.down_until = 0.0
        for d in cfg.get("domains") or []:
            self.load_domain(d)
        self.set_knobs(cfg.get("knobs") or {})
        self.reset_stats()

    def new_domain_attrs(self, dn, attrs):
        """A domain entry as LdapProvisioning.createDomain (2725-2830) leaves it: a NEW
        zimbraId always (2810-2811: none given is kept), zimbraDomainType local and
        zimbraDomainStatus active unless given, the create time."""
        a = dict(attrs)
        a["zimbraId"] = str(uuid.uuid5(uuid.NAMESPACE_DNS, "zsim-domain:%s/%s" % (self.name, dn)))
        a["zimbraDomainName"] = dn
        a.setdefault("zimbraDomainType", "local")
        a.setdefault("zimbraDomainStatus", "active")
        a["zimbraCreateTimestamp"] = time.strftime("%Y%m%d%H%M%SZ", time.gmtime())
        return a

    def cos_id(self, name):
        cid = self.coses.get(str(name).lower())
        if cid is None:
            raise SoapFault("account.NO_SUCH_COS", "no such cos: %s" % name)
        return cid

    def next_mbxid(self):
        self._mbxid += 1
        return self._mbxid

    def load_domain(self, d):
        dn = d["name"].lower()
        if dn not in self.domains:
            self.domains.append(dn)
        da = dict(d.get("attrs") or {})
        if d.get("cos"):     # the domain's default COS by name (zimbraDomainDefaultCOSId)
            da["zimbraDomainDefaultCOSId"] = self.cos_id(d["cos"])
        self.domain_attrs[dn] = self.new_domain_attrs(dn, da)
        for spec in d.get("accounts") or []:
            self.add_account(spec, dn)
        for spec in d.get("resources") or []:
            # calendar resources: accounts of objectClass zimbraCalendarResource
            # (LdapProvisioning.createCalendarResource 6472-6491)
            r = self.add_account(spec, dn)
            r.calres = True
            r.attrs["zimbraAccountCalendarUserType"] = "RESOURCE"
        for spec in d.get("lists") or []:
            dl = self.add_list(spec["name"], dict(spec.get("attrs") or {}), spec.get("id"))
            dl["members"] = [str(m).lower() for m in spec.get("members") or []]
            dl["owners"] = [str(o).lower() for o in spec.get("owners") or []]
            for al in spec.get("aliases") or []:
                self.list_aliases[al.lower()] = dl["name"]
                dl["attrs"]["zimbraMailAlias"].append(al.lower())
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
        if self.address_taken(name):
            raise SoapFault("account.ACCOUNT_EXISTS", "email address already exists: %s" % name)
        a = Account(self, name, domain, spec)
        self.accounts[name] = a
        # a second account with the same zimbraId is accepted (Zimbra does not check:
        # ldap/SpecialAttrs.java:62-72); by id the first one is found (a GUESS: the real
        # getAccountById searches LDAP and what it does with two entries is not modelled)
        self.by_id.setdefault(a.id, a)
        return a

    def address_taken(self, addr):
        """An account, alias or list has this address (they share the mail branch: the
        real server refuses the LDAP entry or the alias entry)."""
        a = addr.lower()
        return a in self.accounts or a in self.aliases or a in self.lists or a in self.list_aliases

    def add_list(self, name, attrs, zid=None):
        """A static list as LdapProvisioning.createDistributionList (4534-4630) leaves it:
        a NEW zimbraId always (4574-4575: generateUUID after mapToAttrs, so a given zimbraId
        is not kept; zsim derives it from the name unless the config gives one, a GUESS-free
        stand-in for the random UUID so that recreated lists compare equal), mail and
        zimbraMailAlias = the name (4577-4583), zimbraMailStatus enabled unless given
        (4585-4588), cn = displayName (4590-4593), uid = the local part (4595), the create
        time (4576).  An address in use -> DISTRIBUTION_LIST_EXISTS (4620-4621)."""
        name = name.lower().strip()
        if self.address_taken(name):
            raise SoapFault("account.DISTRIBUTION_LIST_EXISTS", "email address already exists: %s" % name)
        lp, dom = name.split("@")
        at = dict(attrs)
        at.pop("zimbraId", None)
        at["zimbraId"] = zid or str(uuid.uuid5(uuid.NAMESPACE_DNS, "zsim-list:%s/%s" % (self.name, name)))
        at["zimbraCreateTimestamp"] = time.strftime("%Y%m%d%H%M%SZ", time.gmtime())
        at["mail"] = name
        at["zimbraMailAlias"] = [name]
        at.setdefault("zimbraMailStatus", "enabled")
        if at.get("displayName"):
            at["cn"] = at["displayName"]
        at["uid"] = lp
        dl = {"id": at["zimbraId"], "name": name, "domain": dom, "attrs": at, "members": [],
              "owners": []}
        self.lists[name] = dl
        return dl

    def find_list(self, key, by="name"):
        """by name: zimbraMailAlias = key (UBIDLdapFilterFactory.distributionListByName
        1068-1073), the list's aliases too; by id."""
        key = str(key or "").lower()
        if by == "id":
            return next((d for d in self.lists.values() if d["id"] == key), None)
        return self.lists.get(key) or self.lists.get(self.list_aliases.get(key, ""))

    def delete_account(self, name):
        a = self.accounts.pop(name.lower(), None)
        if a:
            if self.by_id.get(a.id) is a:
                self.by_id.pop(a.id, None)
                for o in self.accounts.values():   # a duplicate id's other account
                    if o.id == a.id:
                        self.by_id[a.id] = o
                        break
            for al in [k for k, v in self.aliases.items() if v == a.name]:
                del self.aliases[al]
        return a is not None

    def find_account(self, key, by="name"):
        if key is None:
            return None
        key = str(key)
        if by == "id":
            return self.by_id.get(key)
        a = self.accounts.get(key.lower())
        if a is None and key.lower() in self.aliases:
            # by name resolves an alias too (LdapProvisioning getAccountByName searches
            # zimbraMailDeliveryAddress and zimbraMailAlias)
            a = self.accounts.get(self.aliases[key.lower()])
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
                        "rest_not_admin_port", "export_max_days", "include_trash_in_search",
                        "include_spam_in_search", "refuse_zimbra_id"):
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
                "mail": {},     # mail SOAP per account: searches, folder_lists, tag_lists
                "modify": {},   # ModifyAccountRequest changes: account -> attr -> count
                "dos": {"rejected": 0, "soap": 0, "rest": 0, "by_tracker": {}},
                "account_auth": collections.Counter(),   # users' own AuthRequests: ok / failed
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
                s.update({"added": 0, "skipped": 0, "replaced": 0, "failed": 0, "modified": 0,
                          "resolve": {}})
            self.stats[section][name] = s
        return s

    def stats_view(self, log=True, digests=True):
        with self.lock:
            out = {
                "name": self.name, "now_ms": now_ms(),
                "auth_requests": json.loads(json.dumps(self.stats["auth_requests"])),
                "soap": dict(self.stats["soap"]),
                "soap_faults": dict(self.stats["soap_faults"]),
                "account_auth": dict(self.stats["account_auth"]),
                "rest_status": {str(k): v for k, v in self.stats["rest_status"].items()},
                "exports": json.loads(json.dumps(self.stats["exports"])),
                "imports": json.loads(json.dumps(self.stats["imports"])),
            }
            for k in ("tokens_in_url", "basic_auth", "tokens_issued", "active_streams"):
                out[k] = self.stats[k]
            out["dos"] = json.loads(json.dumps(self.stats["dos"]))
            out["misrouted"] = json.loads(json.dumps(self.stats["misrouted"]))
            out["mail"] = json.loads(json.dumps(self.stats["mail"]))
            out["modify"] = json.loads(json.dumps(self.stats.get("modify", {})))
            out["faults"] = [dict(f) for f in self.faults]
            accts = [(a.name, a, list(a.items.values())) for a in self.accounts.values()]
            reqs = list(self.requests) if log else None
        total_dup = 0
        out["accounts"] = {}
        for name, a, items in accts:
            e = {"id": a.id, "items": len(items), "size": sum(it.size for it in items),
                 "attrs": dict(a.attrs), "mbxid": a.mbxid, "status": a.status,
                 "mailhost": a.mailhost}
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
            elif (self.upath.rstrip("/") in ("/service/admin/soap", "/service/soap")
                  or self.upath.startswith("/service/admin/soap/")):
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
        if method == "GET" and p == "/zsim/items":
            # every item and folder of one account, to compare source and target
            with sim.lock:
                a = sim.find_account(self.query.get("account"))
                if a is None:
                    return self.reply_json(404, {"error": "no such account"})
                items = list(a.items.values())
                counts = collections.Counter(it.folder for it in items)
                folders = [{"id": a.folder_ids[f], "path": f, "view": a.folder_views.get(f),
                            "n": counts.get(f, 0)} for f in a.folders]
            return self.reply_json(200, {"account": a.name, "id": a.id, "folders": folders,
                                         "items": [it.view() for it in items]})
        if method == "GET" and p == "/zsim/account":
            # the whole stored entry, unsanitized (tests look at what a create stored)
            with sim.lock:
                a = sim.find_account(self.query.get("name", ""))
                if a is None:
                    return self.reply_json(404, {"error": "no such account"})
                return self.reply_json(200, {"name": a.name, "id": a.id, "attrs": a.all_attrs(),
                                             "signatures": a.signatures, "identities": a.identities,
                                             "aliases": sorted(k for k, v in sim.aliases.items()
                                                               if v == a.name)})
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
                # {"account","n","folder"?,"size"?,"type"?,"date"?,"start"?,"end"?,"uid"?,
                #  "subject"?, contact "email"/"firstName"/"fullName", document "name"}
                with sim.lock:
                    a = sim.find_account(body.get("account"))
                    if a is None:
                        return self.reply_json(404, {"error": "no such account"})
                    kind = str(body.get("type", "message"))
                    if kind not in KINDS:
                        return self.reply_json(400, {"error": "unknown type: %s" % kind})
                    base = sec_ms(int(body.get("date", now_ms())))
                    n = int(body.get("n", 1))
                    ids = []
                    for j in range(n):
                        d = dict(body)
                        if kind in CAL_KINDS and d.get("uid") and n > 1:
                            d["uid"] = "%s-%d" % (d["uid"], j)
                        for k in ("email", "name"):
                            if d.get(k) and n > 1:
                                d[k] = "%d.%s" % (j, d[k])
                        if kind == "message":
                            d.setdefault("folder", "Inbox")
                        ids.append(a.add_kind(kind, d, date=base).id)
                return self.reply_json(200, {"added": n, "date_ms": base, "ids": ids})
            if p in ("/zsim/move-item", "/zsim/edit-item", "/zsim/delete-item", "/zsim/add-folder"):
                with sim.lock:
                    a = sim.find_account(body.get("account"))
                    if a is None:
                        return self.reply_json(404, {"error": "no such account"})
                    if p == "/zsim/add-folder":
                        a.add_folder(str(body["folder"]), body.get("view"))
                        f = str(body["folder"]).strip("/")
                        return self.reply_json(200, {"folder": f, "id": a.folder_ids[f]})
                    it = a.items.get(int(body.get("id", 0)))
                    if it is None:
                        return self.reply_json(404, {"error": "no such item"})
                    if p == "/zsim/move-item":
                        a.add_folder(str(body["folder"]))
                        it.folder = str(body["folder"]).strip("/")
                    elif p == "/zsim/edit-item":
                        a.edit_item(it, body.get("subject"), body.get("start"), body.get("end"))
                    else:
                        del a.items[it.id]
                        return self.reply_json(200, {"deleted": it.id})
                    return self.reply_json(200, it.view())
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
            if p == "/zsim/delete-domain":
                # tests: forget a domain and its accounts (no such request in Zimbra for a
                # non-empty domain: DOMAIN_NOT_EMPTY; this is the harness resetting)
                with sim.lock:
                    dn = str(body.get("name", "")).lower()
                    for n in [n for n, a in sim.accounts.items() if a.domain == dn]:
                        sim.delete_account(n)
                    for n in [n for n, d in sim.lists.items() if d["domain"] == dn]:
                        del sim.lists[n]
                        for al in [k for k, v in sim.list_aliases.items() if v == n]:
                            del sim.list_aliases[al]
                    gone = dn in sim.domains
                    if gone:
                        sim.domains.remove(dn)
                        sim.domain_attrs.pop(dn, None)
                    return self.reply_json(200, {"deleted": gone})
            if p == "/zsim/delete-cos":
                with sim.lock:
                    cn = str(body.get("name", "")).lower()
                    gone = sim.coses.pop(cn, None) is not None
                    sim.cos_attrs.pop(cn, None)
                    return self.reply_json(200, {"deleted": gone})
            if p == "/zsim/domain":
                with sim.lock:
                    dn = str(body.get("name", "")).lower()
                    if dn not in sim.domains:
                        return self.reply_json(404, {"error": "no such domain"})
                    return self.reply_json(200, {"name": dn, "attrs": sim.domain_attrs.get(dn, {})})
            if p == "/zsim/list":
                # the whole stored list (tests)
                with sim.lock:
                    dl = sim.find_list(body.get("name", ""))
                    if dl is None:
                        return self.reply_json(404, {"error": "no such list"})
                    return self.reply_json(200, {"name": dl["name"], "id": dl["id"],
                                                 "attrs": dl["attrs"],
                                                 "members": sorted(dl["members"]),
                                                 "owners": list(dl.get("owners") or [])})
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
        self.rec["about"] = about     # the request log's: what the request was about
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
            if reqname in MAIL_REQUESTS:
                if self.mail_context(ctx, raw):
                    return          # proxied to the account's home server
            resp = handler(req, ctx, extra_headers)
        except SoapFault as e:
            return self.soap_fault(fmt, e)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            return self.soap_fault(fmt, SoapFault("service.INVALID_REQUEST",
                                                  "invalid request: %s" % str(e)[:200]))
        rname = reqname[:-len("Request")] + "Response" if reqname.endswith("Request") else reqname + "Response"
        resp["_jsns"] = "urn:zimbraMail" if reqname in MAIL_REQUESTS else "urn:zimbraAdmin"
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

    def account_auth(self, req):
        """A user's own AuthRequest (urn:zimbraAccount, service/account/Auth.java): the
        password is checked against the stored userPassword hash as AuthMechanism does for
        {SSHA}/{SSHA512} (account/auth/AuthMechanism.java 233-237, PasswordUtil.java
        38-130); a plain stored value (only a test would store one) is compared as is.
        Statuses other than active refuse the login (a simplification: the real server
        answers maintenance with account.MAINTENANCE_MODE)."""
        sim = self.sim
        acc = jelem(req, "account")
        name = str(acc.get("_content", "")).lower() if acc else ""
        pw = str(jval(req, "password") or "")
        with sim.lock:
            a = sim.find_account(name)
            stored = a.attrs.get("userPassword") if a else None
            st = sim.stats["account_auth"]
            ok = a is not None and a.status == "active" and stored and verify_password(stored, pw)
            st["ok" if ok else "failed"] += 1
        if not ok:
            raise SoapFault("account.AUTH_FAILED", "authentication failed for [%s]" % name)
        tok, exp = sim.mint_token(a.name)
        return {"authToken": [{"_content": tok}], "lifetime": max(0, exp - now_ms())}

    def soap_AuthRequest(self, req, ctx, hdrs):
        sim = self.sim
        if req.get("_jsns") == "urn:zimbraAccount":
            return self.account_auth(req)
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
        lst = []
        for k, v in a.all_attrs().items():
            if want is not None and k.lower() not in want:
                continue
            for one in (v if isinstance(v, list) else [v]):
                # never a password: Provisioning.sanitizedAttrValue (store/src/java/com/zimbra/
                # cs/account/Provisioning.java 464-481) via ToXML.encodeAttrs (ToXML.java 145)
                if k.lower() in BLOCKED_ATTRS:
                    one = "VALUE-BLOCKED"
                lst.append({"n": k, "_content": one})
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
                    if getattr(a, "calres", False):
                        # a GUESS: types=accounts leaves calendar resources out (they are
                        # types=resources), as GetAllAccounts does (allAccountsOnly)
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
            # not the calendar resources: LdapProvisioning.getAllAccounts (7041) searches
            # allAccountsOnly = accounts and not zimbraCalendarResource
            # (UBIDLdapFilterFactory 252-255)
            accts = sorted((a for a in sim.accounts.values() if (not dn or a.domain == dn)
                            and not getattr(a, "calres", False)), key=lambda a: a.name)
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

    def soap_FlushCacheRequest(self, req, ctx, hdrs):
        """service/admin/FlushCache.java doFlushCache (85-96): <cache type=.. allServers=..>
        with <entry by=..>; zsim keeps no cache (its accounts are read live), so only the
        request is counted (stats)."""
        c = jelem(req, "cache")
        if not c or not c.get("type"):
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing cache type")
        return {}

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

    @staticmethod
    def req_attrs(req):
        """<a n=..> of a request as the real getAttrsAsOldMultimap: a name given twice is
        multi-valued (a list); with ignore_empty (CreateAccount.java 71) "" values drop."""
        out = {}
        for x in jlist(req, "a"):
            n = x.get("n")
            if not n:
                continue
            v = str(x.get("_content", ""))
            if n in out:
                out[n] = (out[n] if isinstance(out[n], list) else [out[n]]) + [v]
            else:
                out[n] = v
        return out

    # attributes immutable="1" of the account class (store/conf/attrs/zimbra-attrs.xml:
    # mail 247, uid 331, zimbraId 352, zimbraMemberOf 395, zimbraLastLogonTimestamp 786,
    # zimbraCreateTimestamp 4186, zimbraTwoFactorAuthSecret 8519, ...ScratchCodes 8523,
    # zimbraAppSpecificPassword 8582, zimbraTwoFactorAuthTrustedDevices 8829,
    # zimbraMailboxInitialized 10294); AttributeInfo.checkValue refuses them when the
    # caller asks for the check (AttributeInfo.java:303-305): CreateAccount
    # (LdapProvisioning 1360), ModifyAccount (service/admin/ModifyAccount.java:233),
    # CreateIdentity (LdapProvisioning 7867-7869)
    IMMUTABLE = {"mail", "uid", "zimbraid", "zimbramemberof", "zimbralastlogontimestamp",
                 "zimbracreatetimestamp", "zimbratwofactorauthsecret",
                 "zimbratwofactorauthscratchcodes", "zimbraappspecificpassword",
                 "zimbratwofactorauthtrusteddevices", "zimbramailboxinitialized"}

    # the identity class (optionalIn/requiredIn "identity" in zimbra-attrs.xml)
    IDENTITY_ATTRS = {n.lower() for n in (
        "zimbraPrefMailSignature zimbraPrefMailSignatureEnabled zimbraPrefSaveToSent "
        "zimbraPrefReplyToAddress zimbraPrefSentMailFolder zimbraPrefForwardReplyPrefixChar "
        "zimbraPrefReplyIncludeOriginalText zimbraPrefForwardIncludeOriginalText "
        "zimbraPrefMailSignatureStyle zimbraPrefFromDisplay zimbraPrefFromAddress "
        "zimbraPrefReplyToDisplay zimbraPrefReplyToEnabled zimbraPrefWhenSentToEnabled "
        "zimbraPrefWhenSentToAddresses zimbraPrefWhenInFoldersEnabled zimbraPrefWhenInFolderIds "
        "zimbraPrefUseDefaultIdentitySettings zimbraPrefBccAddress zimbraPrefIdentityName "
        "zimbraPrefForwardReplyFormat zimbraPrefIdentityId zimbraPrefDefaultSignatureId "
        "zimbraPrefReadReceiptsToAddress zimbraPrefForwardReplySignatureId "
        "zimbraPrefCalendarAutoAcceptSignatureId zimbraPrefCalendarAutoDeclineSignatureId "
        "zimbraPrefCalendarAutoDenySignatureId zimbraPrefCalendarAcceptSignatureId "
        "zimbraPrefCalendarTentativeSignatureId zimbraPrefCalendarDeclineSignatureId "
        "zimbraPrefFromAddressType zimbraCreateTimestamp").split()}

    @classmethod
    def check_immutable(cls, attrs):
        for n in attrs:
            if n.lower() in cls.IMMUTABLE:
                raise SoapFault("service.INVALID_REQUEST", "invalid request: %s is immutable" % n)

    @staticmethod
    def check_delegated_sender(attrs, allowed):
        """callback/AllowAddressForDelegatedSender.java:47-70: each value is the entry's
        address or one of its aliases; at create only the name being created (48-53)."""
        v = attrs.get("zimbraPrefAllowAddressForDelegatedSender")
        if v is None:
            return
        allowed = {x.lower() for x in allowed}
        for x in (v if isinstance(v, list) else [v]):
            if x and x.lower() not in allowed:
                raise SoapFault("service.INVALID_REQUEST",
                                "invalid request: value is not one of the addresses of the entry: %s" % x)

    def check_plain_signature(self, a, attrs):
        """callback/PlainTextSignature.java:44-69 (zimbraPrefCalendarAuto{Accept,Decline,Deny}
        SignatureId, zimbra-attrs.xml:5693-5701): on an existing account (at create the entry
        is null and the callback returns, 56) the id must name one of its signatures with
        text/plain content."""
        for n in ("zimbraPrefCalendarAutoAcceptSignatureId", "zimbraPrefCalendarAutoDeclineSignatureId",
                  "zimbraPrefCalendarAutoDenySignatureId"):
            v = attrs.get(n)
            if not v:
                continue
            own = self.account_signature(a)
            sig = next((x for x in ([own] if own else []) + a.signatures if x["id"] == v), None)
            if sig is None:
                raise SoapFault("service.INVALID_REQUEST",
                                "invalid request: No such signature %s for account %s" % (v, a.name))
            if not any(c.get("type") == "text/plain" and c.get("_content") for c in sig["content"]):
                raise SoapFault("service.INVALID_REQUEST",
                                "invalid request: Signature %s must have plain text content" % v)

    def check_cos(self, attrs):
        """zimbraCOSId must name an existing COS by id: CreateAccount.checkCos (service/admin/
        CreateAccount.java 110-121), ModifyAccount.checkCos likewise -> account.NO_SUCH_COS."""
        cid = attrs.get("zimbraCOSId")
        if cid and cid not in self.sim.coses.values():
            raise SoapFault("account.NO_SUCH_COS", "no such cos: %s" % cid)

    ACCOUNT_STATUSES = ("active", "maintenance", "locked", "closed", "lockout", "pending")

    def soap_ModifyAccountRequest(self, req, ctx, hdrs):
        """What the real handler does for the attributes zmbatch changes.

        real: zm-mailbox store/src/java/com/zimbra/cs/service/admin/ModifyAccount.java
          - no id: service.INVALID_REQUEST "missing required attribute: id" (89-92); the
            account is looked up by zimbraId only (94), an unknown one is
            account.NO_SUCH_ACCOUNT (defendAgainstAccountHarvesting, 97;
            AdminDocumentHandler.java 187-194);
          - a zimbraMailHost naming no server: account.NO_SUCH_SERVER (126-130,
            defendAgainstServerNameHarvesting); zsim knows its own mailhost and `servers`;
          - zimbraAccountStatus: callback/AccountStatus.java preModify (41-66): unsetting it
            (an empty value) is service.INVALID_REQUEST "zimbraAccountStatus is a required
            attribute"; closed/pending set zimbraMailStatus=disabled, any other status
            zimbraMailStatus=enabled; active clears the lockout times.  A value outside
            the enum of zimbra-attrs.xml (id 2: active,maintenance,locked,closed,lockout,
            pending) is refused by the attribute manager with account.INVALID_ATTR_VALUE
            (GUESS: the exact text is not copied from AttributeManager);
          - zimbraMailTransport (zimbra-attrs.xml id 247: astring, max 320, single-valued,
            on the account): longer -> account.INVALID_ATTR_VALUE (GUESS on the text);
          - an empty value unsets an attribute (LDAP modify semantics of modifyAttrs, 233);
          - the answer is the account (ToXML.encodeAccount, 308-310).
        Every attribute is checked before any is changed (the real modifyAttrs validates
        the whole map first).  stats["modify"][account][attr] counts the changes."""
        sim = self.sim
        zid = jval(req, "id")
        if not zid:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing required attribute: id")
        with sim.lock:
            a = sim.find_account(zid, "id")
            if a is None:
                raise SoapFault("account.NO_SUCH_ACCOUNT", "no such account: %s" % zid)
            attrs = self.req_attrs(req)
            self.check_immutable(attrs)      # ModifyAccount.java:233 checkImmutable
            self.check_cos(attrs)
            self.check_delegated_sender(attrs, [a.name] + [k for k, o in self.sim.aliases.items()
                                                            if o == a.name])
            self.check_plain_signature(a, attrs)
            for n, v in attrs.items():
                if n.lower() in ("zimbraid", "uid", "zimbramailalias", "zimbramaildeliveryaddress"):
                    # immutable / renamed by RenameAccount or aliases only (zimbra-attrs.xml:
                    # zimbraId immutable; sInvalidAccountCreateModifyAttrs, LdapProvisioning 245-249)
                    raise SoapFault("service.INVALID_REQUEST", "invalid request: cannot modify %s" % n)
                if n == "zimbraAccountStatus":
                    if v == "":
                        raise SoapFault("service.INVALID_REQUEST",
                                        "invalid request: zimbraAccountStatus is a required attribute")
                    if v not in self.ACCOUNT_STATUSES:
                        raise SoapFault("account.INVALID_ATTR_VALUE",
                                        "invalid attr value: zimbraAccountStatus must be one of: %s"
                                        % ",".join(self.ACCOUNT_STATUSES))
                elif n == "zimbraMailTransport" and len(v) > 320:
                    raise SoapFault("account.INVALID_ATTR_VALUE",
                                    "invalid attr value: zimbraMailTransport value length(%d) "
                                    "larger than max allowed: 320" % len(v))
                elif n == "zimbraMailHost" and v and self.server_entry(v) is None:
                    raise SoapFault("account.NO_SUCH_SERVER", "no such server: %s" % v)
            counts = sim.stats.setdefault("modify", {}).setdefault(a.name, {})
            for n, v in attrs.items():
                counts[n] = counts.get(n, 0) + 1
                if n == "zimbraAccountStatus":
                    a.status = v
                    a.attrs.pop("zimbraAccountStatus", None)
                    a.attrs["zimbraMailStatus"] = "disabled" if v in ("closed", "pending") else "enabled"
                elif n == "zimbraMailHost" and v:
                    a.mailhost = v
                elif v == "" or v == [""]:
                    a.attrs.pop(n, None)     # an empty value removes the attribute
                else:
                    a.attrs[n] = v
            return {"account": [self.enc_account(a)]}

    def soap_CreateAccountRequest(self, req, ctx, hdrs):
        """LdapProvisioning.createAccount (store/src/java/com/zimbra/cs/account/ldap/
        LdapProvisioning.java 1322-1580) as far as a simulator needs it."""
        sim = self.sim
        name = jval(req, "name")
        if not name or str(name).count("@") != 1:
            # "must be valid email address" (1331-1335)
            raise SoapFault("service.INVALID_REQUEST", "invalid request: must be valid email address: %s" % name)
        name = str(name).lower().strip()
        attrs = {k: v for k, v in self.req_attrs(req).items() if v != ""}
        with sim.lock:
            self.check_cos(attrs)
            domain = name.split("@")[1]
            if domain not in sim.domains:
                raise SoapFault("account.NO_SUCH_DOMAIN", "no such domain: %s" % domain)   # 1367-1370
            for bad in ("uid", "zimbraMailAlias", "zimbraMailDeliveryAddress"):
                if bad in attrs:   # sInvalidAccountCreateModifyAttrs (245-249), checked 1379-1383
                    raise SoapFault("service.INVALID_REQUEST",
                                    "invalid request: invalid attribute for CreateAccount: %s" % bad)
            if "zimbraId" in attrs and sim.knobs.get("refuse_zimbra_id"):
                # carbonio-mailbox 4.12.0 service/admin/CreateAccount.java:58-62
                raise SoapFault("service.INVALID_REQUEST", "invalid request: Failed to create "
                                "account, passing account zimbraId in attributes is not allowed.")
            zid = attrs.pop("zimbraId", None)
            if zid is not None:
                # SpecialAttrs.handleZimbraId (ldap/SpecialAttrs.java 50-78): a valid UUID, kept;
                # uniqueness is NOT checked ("GIGO", 62-72): a second account with the same
                # id is made, as on the real server
                try:
                    uuid.UUID(str(zid))
                except ValueError:
                    raise SoapFault("service.INVALID_REQUEST", "invalid request: %s is not a valid UUID" % zid)
            # preModify with checkImmutable (LdapProvisioning 1360; zimbraId was taken out
            # above by handleZimbraId, 1327) and the callbacks with entry == null
            self.check_immutable(attrs)
            self.check_delegated_sender(attrs, [name])
            status = attrs.pop("zimbraAccountStatus", "active")   # default active (1464-1467)
            # a given zimbraMailHost / zimbraMailTransport is kept as given; only a missing
            # one is defaulted to this server (addMailHost 1715-1731, 1497-1502).  (The
            # real MailHost callback also checks that the server exists: not simulated.)
            mailhost = attrs.pop("zimbraMailHost", None)
            lp = name.split("@")[0]
            # cn from displayName or the local part, sn the local part (1525-1535); the
            # create time (1462) and the password time (1548); userPassword kept as given:
            # "password is a hash i.e. from autoprov" (1541-1547)
            attrs.setdefault("cn", attrs.get("displayName", lp))
            attrs.setdefault("sn", lp)
            attrs["zimbraCreateTimestamp"] = time.strftime("%Y%m%d%H%M%SZ", time.gmtime())
            attrs["zimbraPasswordModifiedTime"] = attrs["zimbraCreateTimestamp"]
            spec = {"name": name, "attrs": attrs, "status": status}
            if mailhost:
                spec["mailhost"] = mailhost
            if zid:
                spec["id"] = str(zid)
            a = sim.add_account(spec, domain)     # ACCOUNT_EXISTS (1576-1577)
            return {"account": [self.enc_account(a)]}

    def account_signature(self, a):
        """The signature kept on the account entry itself (LdapSignature.getAccountSignature:
        zimbraSignatureId + zimbraSignatureName on the account, the contents in
        zimbraPrefMailSignature / zimbraPrefMailSignatureHTML), or None."""
        sid, name = a.attrs.get("zimbraSignatureId"), a.attrs.get("zimbraSignatureName")
        if not sid or not name:
            return None
        c = []
        for attr, t in (("zimbraPrefMailSignature", "text/plain"), ("zimbraPrefMailSignatureHTML", "text/html")):
            if a.attrs.get(attr):
                c.append({"type": t, "_content": a.attrs[attr]})
        return {"name": name, "id": sid, "content": c}

    def soap_GetSignaturesRequest(self, req, ctx, hdrs):
        """service/account/GetSignatures.java: every signature (getAllSignatures: the
        account's own, then the child entries), ToXML.encodeSignature (243-258)."""
        a = self.mail_acct
        with self.sim.lock:
            own = self.account_signature(a)
            return {"signature": ([own] if own else []) + [dict(x) for x in a.signatures]}

    def soap_CreateSignatureRequest(self, req, ctx, hdrs):
        """service/account/CreateSignature.java (an id given is kept) and LdapProvisioning
        createSignature (8107-8190): a name or id already there -> account.SIGNATURE_EXISTS,
        content types text/plain and text/html only (else INVALID_REQUEST)."""
        a = self.mail_acct
        el = jelem(req, "signature") or {}
        name = el.get("name")
        if not name:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing required attribute: name")
        content = []
        for c in jlist(el, "content"):
            if c.get("type") not in ("text/plain", "text/html"):
                raise SoapFault("service.INVALID_REQUEST", "invalid request: invalid type %s" % c.get("type"))
            content.append({"type": c["type"], "_content": str(c.get("_content", ""))})
        with self.sim.lock:
            own = self.account_signature(a)
            for x in ([own] if own else []) + a.signatures:
                if x["name"].lower() == str(name).lower() or (el.get("id") and x["id"] == el.get("id")):
                    raise SoapFault("account.SIGNATURE_EXISTS", "signature %s already exists" % name)
            sg = {"name": str(name), "id": str(el.get("id") or uuid.uuid4()), "content": content}
            if not own and not a.signatures:
                # the account's first signature becomes its default (LdapProvisioning
                # createSignature: numSigs == 0 -> setAsDefault; LdapSignatureBase.java:110-112).
                # NOT modelled: the real one puts it on the account entry then (the empty
                # "slot", createSignature 8165-8172); here it stays a child entry
                a.attrs["zimbraPrefDefaultSignatureId"] = sg["id"]
            a.signatures.append(sg)
            return {"signature": [{"name": sg["name"], "id": sg["id"]}]}

    def soap_GetIdentitiesRequest(self, req, ctx, hdrs):
        """service/account/GetIdentities.java: the DEFAULT identity (the account itself, its
        zimbraPref* attributes) and the child identities, ToXML.encodeIdentity (236-241)."""
        a = self.mail_acct
        with self.sim.lock:
            dflt = {k: v for k, v in a.attrs.items() if k.startswith("zimbraPref")}
            out = [{"name": "DEFAULT", "id": a.attrs.get("zimbraPrefIdentityId", a.id),
                    "a": [{"name": k, "_content": v} for k, v in dflt.items()]}]
            for x in a.identities:
                # every attribute of the entry (ToXML.encodeIdentity 235-241 getUnicodeAttrs):
                # the objectClass and the create time createIdentity set (7881, 7887) too
                ent = dict(x["attrs"])
                ent.setdefault("objectClass", "zimbraIdentity")
                ent.setdefault("zimbraCreateTimestamp", x.get("created", "20200101000000Z"))
                out.append({"name": x["name"], "id": x["id"],
                            "a": [{"name": k, "_content": v} for k, v in ent.items()]})
            return {"identity": out}

    def soap_CreateIdentityRequest(self, req, ctx, hdrs):
        """service/account/CreateIdentity.java (attrs <a name=..>) and LdapProvisioning
        createIdentity (7847-7900): DEFAULT or a name already there -> account.IDENTITY_EXISTS;
        a zimbraPrefIdentityId given is kept, else a new UUID (7883-7886)."""
        a = self.mail_acct
        el = jelem(req, "identity") or {}
        name = el.get("name")
        if not name:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing required attribute: name")
        at = {}
        for x in jlist(el, "a"):
            if x.get("name"):
                at[x["name"]] = str(x.get("_content", ""))
        at = {k: v for k, v in at.items() if k.lower() != "objectclass"}   # 7850
        for k in at:   # validateIdentityAttrs (7822-7829)
            if k.lower() not in self.IDENTITY_ATTRS:
                raise SoapFault("service.INVALID_REQUEST", "invalid request: unable to modify attr: %s" % k)
        self.check_immutable(at)   # preModify checkImmutable (7867-7869): zimbraCreateTimestamp
        with self.sim.lock:
            if str(name).lower() == "default" or any(x["name"].lower() == str(name).lower()
                                                     for x in a.identities):
                raise SoapFault("account.IDENTITY_EXISTS", "identity %s already exists" % name)
            at["zimbraPrefIdentityName"] = str(name)
            at.setdefault("zimbraPrefIdentityId", str(uuid.uuid4()))
            idn = {"name": str(name), "id": at["zimbraPrefIdentityId"], "attrs": at}
            a.identities.append(idn)
            return {"identity": [{"name": idn["name"], "id": idn["id"],
                                  "a": [{"name": k, "_content": v} for k, v in at.items()]}]}

    def soap_AddAccountAliasRequest(self, req, ctx, hdrs):
        """LdapProvisioning.addAlias (2480-2570): the alias's domain must exist; an alias
        entry that exists (on this account too: 2536-2543) -> account.ACCOUNT_EXISTS;
        then +zimbraMailAlias +mail on the account."""
        sim = self.sim
        zid = jval(req, "id")
        alias = str(jval(req, "alias") or "").lower().strip()
        if alias.count("@") != 1:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: must be valid email address: %s" % alias)
        with sim.lock:
            a = sim.find_account(zid, "id")
            if a is None:
                raise SoapFault("account.NO_SUCH_ACCOUNT", "no such account: %s" % zid)
            if alias.split("@")[1] not in sim.domains:
                raise SoapFault("account.NO_SUCH_DOMAIN", "no such domain: %s" % alias.split("@")[1])
            if sim.address_taken(alias):
                raise SoapFault("account.ACCOUNT_EXISTS", "email address already exists: %s" % alias)
            sim.aliases[alias] = a.name
            cur = a.attrs.get("zimbraMailAlias") or []
            a.attrs["zimbraMailAlias"] = (cur if isinstance(cur, list) else [cur]) + [alias]
            return {}

    def soap_GetDomainRequest(self, req, ctx, hdrs):
        """service/admin/GetDomain.java 56-75: by name; missing -> account.NO_SUCH_DOMAIN;
        applyConfig=0 leaves out the values inherited from the global config (zsim keeps
        none of those)."""
        d = jelem(req, "domain")
        if not d or d.get("_content") is None:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing domain")
        dn = str(d["_content"]).lower()
        with self.sim.lock:
            if dn not in self.sim.domains:
                raise SoapFault("account.NO_SUCH_DOMAIN", "no such domain: %s" % dn)
            at = self.sim.domain_attrs.get(dn) or self.sim.new_domain_attrs(dn, {})
            return {"domain": [{"name": dn, "id": at["zimbraId"],
                                "a": [{"n": k, "_content": v} for k, v in at.items()]}]}

    def soap_CreateDomainRequest(self, req, ctx, hdrs):
        """service/admin/CreateDomain.java 50-90 + LdapProvisioning.createDomain: an existing
        name -> account.DOMAIN_EXISTS; zimbraDomainDefaultCOSId must be a COS id (the CosId
        callback: a guess at its check, as for accounts)."""
        name = str(jval(req, "name") or "").lower().strip()
        if not name or "." not in name:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: invalid domain name: %s" % name)
        attrs = {k: v for k, v in self.req_attrs(req).items() if v != ""}
        with self.sim.lock:
            if name in self.sim.domains:
                raise SoapFault("account.DOMAIN_EXISTS", "domain already exists: %s" % name)
            cid = attrs.get("zimbraDomainDefaultCOSId")
            if cid and cid not in self.sim.coses.values():
                raise SoapFault("account.NO_SUCH_COS", "no such cos: %s" % cid)
            attrs.pop("zimbraId", None)
            self.sim.domains.append(name)
            self.sim.domain_attrs[name] = self.sim.new_domain_attrs(name, attrs)
            at = self.sim.domain_attrs[name]
            return {"domain": [{"name": name, "id": at["zimbraId"],
                                "a": [{"n": k, "_content": v} for k, v in at.items()]}]}

    def soap_GetCosRequest(self, req, ctx, hdrs):
        """service/admin/GetCos.java 56-75: by name or id; missing -> account.NO_SUCH_COS."""
        c = jelem(req, "cos")
        if not c or c.get("_content") is None:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing cos")
        by, key = c.get("by", "name"), str(c["_content"])
        want = {x.strip().lower() for x in str(jval(req, "attrs") or "").split(",") if x.strip()}
        with self.sim.lock:
            for n, cid in self.sim.coses.items():
                if (by == "id" and cid == key) or (by == "name" and n == key.lower()):
                    at = dict(self.sim.cos_attrs.get(n) or {})
                    at.update({"cn": n, "zimbraId": cid})
                    return {"cos": [{"name": n, "id": cid, "a": [
                        {"n": k, "_content": v} for k, v in at.items() if not want or k.lower() in want]}]}
        raise SoapFault("account.NO_SUCH_COS", "no such cos: %s" % key)

    def soap_CreateCosRequest(self, req, ctx, hdrs):
        """service/admin/CreateCos.java 45-60 + LdapProvisioning.createCos (3164-3166): a copy
        of the "default" COS with the attributes given on top (copyCos 3174-3245: a new
        zimbraId, cn = the name; COS_EXISTS)."""
        name = str(jval(req, "name") or "").lower().strip()
        if not name:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing name")
        attrs = {k: v for k, v in self.req_attrs(req).items() if v != ""}
        with self.sim.lock:
            if name in self.sim.coses:
                raise SoapFault("account.COS_EXISTS", "cos already exists: %s" % name)
            for k in ("zimbraId", "cn", "zimbraCreateTimestamp"):
                attrs.pop(k, None)
            at = dict(self.sim.cos_attrs.get("default") or {})
            at.update(attrs)
            # a new id (real: a random UUID); zsim's is derived from the name so that a test
            # recreating it gets the same one
            self.sim.coses[name] = str(uuid.uuid5(uuid.NAMESPACE_DNS, "zsim-cos-new:%s/%s" % (self.sim.name, name)))
            self.sim.cos_attrs[name] = at
            return {"cos": [{"name": name, "id": self.sim.coses[name],
                             "a": [{"n": k, "_content": v} for k, v in at.items()]}]}

    # ---- distribution lists (static; dynamic groups are not simulated) ----
    @staticmethod
    def enc_list(dl, members=True):
        """GetDistributionList.encodeDistributionList (186-214): name, id, dynamic, the
        attributes (zimbraMailForwardingAddress, the members, hidden: hideMembers 196-203);
        then encodeMembers (140-172): one <dlm> per member, sorted (163-167)."""
        e = {"name": dl["name"], "id": dl["id"], "dynamic": False,
             "a": [{"n": k, "_content": one} for k, v in dl["attrs"].items()
                   for one in (v if isinstance(v, list) else [v])]}
        if dl.get("owners"):
            # encodeOwners (217-235): the users granted ownDistList on the list (zsim: by
            # name only; the real one resolves the grants' grantee ids)
            e["owners"] = [{"owner": [{"type": "usr", "name": o,
                                       "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "zsim-owner:" + o))}
                                      for o in dl["owners"]]}]
        if members:
            e["dlm"] = [{"_content": m} for m in sorted(dl["members"])]
        return e

    def get_list(self, req_or_id, by="id"):
        dl = self.sim.find_list(req_or_id, by)
        if dl is None:
            # AccountServiceException.NO_SUCH_DISTRIBUTION_LIST (290-291)
            raise SoapFault("account.NO_SUCH_DISTRIBUTION_LIST", "no such distribution list: %s" % req_or_id)
        return dl

    def soap_GetAllDistributionListsRequest(self, req, ctx, hdrs):
        """service/admin/GetAllDistributionLists.java 52-127: <domain by=name>, missing ->
        NO_SUCH_DOMAIN (72-73); per list encodeDistributionList with hideMembers and then
        its members (121-124)."""
        d = jelem(req, "domain")
        dn = str(d.get("_content")).lower() if d else None
        with self.sim.lock:
            if dn and dn not in self.sim.domains:
                raise SoapFault("account.NO_SUCH_DOMAIN", "no such domain: %s" % dn)
            dls = sorted((x for x in self.sim.lists.values() if not dn or x["domain"] == dn),
                         key=lambda x: x["name"])
            return {"dl": [self.enc_list(x) for x in dls]}

    def soap_GetDistributionListRequest(self, req, ctx, hdrs):
        """service/admin/GetDistributionList.java 78-137: <dl by=name|id>; limit 0 = every
        member (153-156); more/total (170-171)."""
        e = jelem(req, "dl")
        if not e or e.get("_content") is None:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing dl")
        with self.sim.lock:
            dl = self.get_list(e["_content"], "id" if e.get("by") == "id" else "name")
            return {"dl": [self.enc_list(dl)], "more": False, "total": len(dl["members"])}

    def soap_CreateDistributionListRequest(self, req, ctx, hdrs):
        """service/admin/CreateDistributionList.java 57-92 + LdapProvisioning.
        createDistributionList (4534-4630, zsim add_list): name lower-cased (66), attrs with
        "" dropped (70, getAttrsAsOldMultimap(true)); the domain must exist (4563-4565)."""
        name = str(jval(req, "name") or "").lower().strip()
        if not name:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing name")
        if name.count("@") != 1:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: must be valid list address: %s" % name)
        if str(jval(req, "dynamic") or "").lower() in ("1", "true"):
            raise SoapFault("service.INVALID_REQUEST", "invalid request: zsim: dynamic groups are not simulated")
        attrs = {k: v for k, v in self.req_attrs(req).items() if v != ""}
        with self.sim.lock:
            if name.split("@")[1] not in self.sim.domains:
                raise SoapFault("account.NO_SUCH_DOMAIN", "no such domain: %s" % name.split("@")[1])
            for bad in ("zimbraCreateTimestamp",):   # immutable (zimbra-attrs.xml 4186)
                if bad in attrs:
                    raise SoapFault("service.INVALID_REQUEST", "invalid request: %s is immutable" % bad)
            dl = self.sim.add_list(name, attrs)
            return {"dl": [self.enc_list(dl, members=False)]}

    def soap_ModifyDistributionListRequest(self, req, ctx, hdrs):
        """service/admin/ModifyDistributionList.java 61-80: id, attrs; modifyAttrs with
        checkImmutable (74); "" deletes the attribute."""
        with self.sim.lock:
            dl = self.get_list(jval(req, "id"))
            for k, v in self.req_attrs(req).items():
                if k in ("zimbraId", "zimbraCreateTimestamp", "mail", "zimbraMailAlias", "uid"):
                    raise SoapFault("service.INVALID_REQUEST", "invalid request: %s cannot be modified here" % k)
                if v == "" or v == [""]:
                    dl["attrs"].pop(k, None)
                else:
                    dl["attrs"][k] = v
            return {"dl": [self.enc_list(dl, members=False)]}

    def soap_AddDistributionListMemberRequest(self, req, ctx, hdrs):
        """service/admin/AddDistributionListMember.java 50-84: id, one <dlm> per member; none
        -> INVALID_REQUEST (61-63).  LdapProvisioning.addDistributionListMembers
        (7501-7580): lower-cased (7513), the list's own addresses refused (7516-7517), a
        member already there skipped (7542), the rest +zimbraMailForwardingAddress; a member
        need not exist (any address: nested lists are members by address).  Not simulated:
        the share notification mail to new members (AddDistributionListMember.java 73-81,
        zimbraDistributionListSendShareMessageToNewMembers)."""
        members = [str(x.get("_content") or "").lower().strip() for x in jlist(req, "dlm")]
        members = [m for m in members if m]
        if not members:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: members to add not specified")
        with self.sim.lock:
            dl = self.get_list(jval(req, "id"))
            own = set(dl["attrs"].get("zimbraMailAlias") or [])
            for m in members:
                if m in own:
                    raise SoapFault("service.INVALID_REQUEST", "invalid request: Cannot add self as a member: %s" % m)
            for m in members:
                if m not in dl["members"]:
                    dl["members"].append(m)
            return {}

    def soap_GrantRightRequest(self, req, ctx, hdrs):
        """service/admin/GrantRight.java 45-77 -> RightCommand.grantRightInternal
        (1384-1431); zsim simulates only the right ownDistList (zimbra-user-rights.xml 57:
        userRight, targetType dl) granted to a user on a list.  The target looked up
        (TargetType.lookupTarget, 1394: a missing list -> NO_SUCH_DISTRIBUTION_LIST), the
        grantee (GranteeType.lookupGrantee 147-157: a user not found ->
        NO_SUCH_ACCOUNT), then ACLUtil.grantRight (131-156) -> ZimbraACL.grant (155-185):
        the same right already granted to the same grantee with the same modifier is left
        as it is and answers nothing special: an empty GrantRightResponse (GrantRight.java
        75), no fault.  zsim keeps the owner by name (the real ACE keeps the grantee's id);
        other target / grantee types and rights: INVALID_REQUEST (GUESS: zsim limit, not
        the real answer)."""
        t, g, r = jelem(req, "target"), jelem(req, "grantee"), jelem(req, "right")
        if not t or not g or not r or r.get("_content") is None:
            raise SoapFault("service.INVALID_REQUEST",
                            "invalid request: No information specified on what right to assign")
        right = str(r.get("_content"))
        if right != "ownDistList" or t.get("type") != "dl" or g.get("type") != "usr":
            raise SoapFault("service.INVALID_REQUEST",
                            "invalid request: zsim: only ownDistList on a dl to a usr is simulated")
        with self.sim.lock:
            dl = self.get_list(t.get("_content"), "id" if t.get("by") == "id" else "name")
            key = str(g.get("_content") or "").lower()
            acct = self.sim.find_account(key, "id" if g.get("by") == "id" else "name")
            if acct is None:
                raise SoapFault("account.NO_SUCH_ACCOUNT", "no such account: %s" % key)
            owners = dl.setdefault("owners", [])
            if acct.name not in owners:
                owners.append(acct.name)
            return {}

    def soap_AddDistributionListAliasRequest(self, req, ctx, hdrs):
        """service/admin/AddDistributionListAlias.java 62-84 -> LdapProvisioning.addGroupAlias
        (9911-9914) -> addAliasInternal (2460-2570), as for accounts: the alias's domain must
        exist, an address in use -> account.ACCOUNT_EXISTS; +zimbraMailAlias +mail."""
        alias = str(jval(req, "alias") or "").lower().strip()
        if alias.count("@") != 1:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: must be valid email address: %s" % alias)
        with self.sim.lock:
            dl = self.get_list(jval(req, "id"))
            if alias.split("@")[1] not in self.sim.domains:
                raise SoapFault("account.NO_SUCH_DOMAIN", "no such domain: %s" % alias.split("@")[1])
            if self.sim.address_taken(alias):
                raise SoapFault("account.ACCOUNT_EXISTS", "email address already exists: %s" % alias)
            self.sim.list_aliases[alias] = dl["name"]
            dl["attrs"]["zimbraMailAlias"].append(alias)
            return {}

    # ---- calendar resources ----
    def get_calres(self, key, by="name"):
        a = self.sim.find_account(key, "id" if by == "id" else "name")
        if a is None or not getattr(a, "calres", False):
            # getCalendarResourceByName/ById answer null for a non-resource account
            # (LdapProvisioning 6529-6560): AccountServiceException.NO_SUCH_CALENDAR_RESOURCE
            raise SoapFault("account.NO_SUCH_CALENDAR_RESOURCE", "no such calendar resource: %s" % key)
        return a

    def soap_GetAllCalendarResourcesRequest(self, req, ctx, hdrs):
        """service/admin/GetAllCalendarResources.java (a GetAllAccounts whose visitor encodes
        calendar resources, 47-65): <domain by=name>; unknown -> NO_SUCH_DOMAIN.  The real
        one encodes with applyCos = true (55); zsim has no COS inheritance."""
        d = jelem(req, "domain")
        dn = str(d.get("_content")).lower() if d else None
        with self.sim.lock:
            if dn and dn not in self.sim.domains:
                raise SoapFault("account.NO_SUCH_DOMAIN", "no such domain: %s" % dn)
            rs = sorted((a for a in self.sim.accounts.values() if getattr(a, "calres", False)
                         and (not dn or a.domain == dn)), key=lambda a: a.name)
            return {"calresource": [self.enc_account(a) for a in rs]}

    def soap_GetCalendarResourceRequest(self, req, ctx, hdrs):
        """service/admin/GetCalendarResource.java handle: calresource by name|id, applyCos
        (default true; zsim has no COS inheritance); missing -> NO_SUCH_CALENDAR_RESOURCE."""
        e = jelem(req, "calresource")
        if not e or e.get("_content") is None:
            raise SoapFault("service.INVALID_REQUEST", "invalid request: missing calresource")
        with self.sim.lock:
            a = self.get_calres(e["_content"], e.get("by", "name"))
            return {"calresource": [self.enc_account(a, jval(req, "attrs"))]}

    def soap_CreateCalendarResourceRequest(self, req, ctx, hdrs):
        """service/admin/CreateCalendarResource.java handle: name, password (optional), attrs
        -> LdapProvisioning.createCalendarResource (6472-6491): zimbraAccountCalendarUserType
        = RESOURCE, then createAccount with the same SpecialAttrs (a given zimbraId kept, as
        for accounts; ACCOUNT_EXISTS); zsim runs its CreateAccount and marks the entry.
        zimbraCalResType and displayName are requiredIn calendarResource (zimbra-attrs.xml
        215, 1724): zsim refuses a create without them (a GUESS at where the real one
        checks: the LDAP schema's MUST)."""
        at = self.req_attrs(req)
        for need in ("zimbraCalResType", "displayName"):
            if not at.get(need):
                raise SoapFault("service.INVALID_REQUEST", "invalid request: missing %s" % need)
        if at.get("zimbraCalResType") not in ("Location", "Equipment"):
            raise SoapFault("account.INVALID_ATTR_VALUE", "zimbraCalResType must be Location or Equipment")
        out = self.soap_CreateAccountRequest(req, ctx, hdrs)
        with self.sim.lock:
            a = self.sim.find_account(out["account"][0]["name"])
            a.calres = True
            a.attrs["zimbraAccountCalendarUserType"] = "RESOURCE"
            return {"calresource": [self.enc_account(a)]}

    def soap_ModifyCalendarResourceRequest(self, req, ctx, hdrs):
        """service/admin/ModifyCalendarResource.java: id, attrs; as ModifyAccount on a resource."""
        with self.sim.lock:
            self.get_calres(jval(req, "id"), "id")
        out = self.soap_ModifyAccountRequest(req, ctx, hdrs)
        return {"calresource": out.get("account", [])}

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
                      {"n": "zimbraServiceEnabled", "_content": "mailbox"}]
                + ([{"n": "zimbraLmtpBindPort", "_content": str(self.sim.lmtp_port)}]
                   if self.sim.lmtp_port and name.lower() == self.sim.mailhost.lower() else [])}

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

    # ---- mail SOAP (urn:zimbraMail) with an admin token acting on an account ----
    def token_admin(self, tok):
        try:
            data = bytes.fromhex(str(tok).split("_")[2]).decode()
            zid = re.search(r"id=\d+:([^;]+);", data).group(1)
        except (ValueError, AttributeError, IndexError):
            return None
        for n, i in self.sim.admin_ids.items():
            if i == zid:
                return n
        return None

    def mail_context(self, ctx, raw):
        """Which mailbox a mail request acts on (self.mail_acct), as ZimbraSoapContext reads
        the context header (zm-mailbox store/src/java/com/zimbra/soap/ZimbraSoapContext.java
        339-385): <account by="name|id">X</account> = act on X; by missing = the token's own
        account; another by -> service.INVALID_REQUEST "unknown value for by"; an unknown
        account with an admin token -> account.NO_SUCH_ACCOUNT (356, 372).  An admin acting
        on another account passes validateDelegatedAccess (518-560: case 1, admin rights).
        Without the header the request acts on the ADMIN's own mailbox: zsim answers from an
        empty mailbox (system folders only) unless the admin is also a configured account
        (inferred: a real admin account has its own, usually empty, mailbox).
        Item ids are then qualified "<zimbraId>:<id>" for another account's items, since
        ItemIdFormatter(zsc) formats against the AUTH account (service/util/
        ItemIdFormatter.java, ItemIdentifier.toString 126-135), unless the context has
        <noqualify/> (ZimbraSoapContext.java:454; HeaderConstants.E_NO_QUALIFY).
        An account homed on another server: the handler proxies the request to it
        (DocumentHandler.proxyIfNecessary, soap/DocumentHandler.java:483) -- zsim forwards it
        when that server is in `servers` (as rest_remote does for REST), else answers here;
        both counted in stats misrouted.  Returns True when the request was proxied."""
        sim = self.sim
        el = jelem(ctx, "account")
        self.mail_noqualify = isinstance(ctx, dict) and "noqualify" in ctx
        with sim.lock:
            if el is not None and el.get("by") is not None:
                by = str(el.get("by"))
                if by not in ("name", "id"):
                    raise SoapFault("service.INVALID_REQUEST", "invalid request: unknown value for by: %s" % by)
                key = el.get("_content")
                a = sim.find_account(key, by)
                if a is None:
                    raise SoapFault("account.NO_SUCH_ACCOUNT", "no such account: %s" % key)
                self.mail_acct, self.mail_delegated = a, True
            else:
                admin = self.token_admin(self.ctx_token(ctx)) or "admin"
                a = sim.accounts.get(admin)
                if a is None:
                    a = sim.admin_mailboxes.get(admin)
                    if a is None:
                        a = sim.admin_mailboxes[admin] = Account(sim, admin, admin.split("@")[-1],
                                                                 {"name": admin})
                self.mail_acct, self.mail_delegated = a, False
            self.rec["account"] = a.name
            remote = a.mailhost.lower() != sim.mailhost.lower()
            if remote:
                m = sim.stats["misrouted"]
                m["total"] += 1
                m["by_account"][a.name] = m["by_account"].get(a.name, 0) + 1
            home = sim.servers.get(a.mailhost.lower()) if remote else None
            if home:
                sim.stats["misrouted"]["proxied"] += 1
        if not home:
            return False
        import http.client
        conn = http.client.HTTPSConnection(str(home.get("host", "127.0.0.1")), int(home.get("port", 7071)),
                                           context=ssl._create_unverified_context(), timeout=60)
        try:
            conn.request("POST", "/service/admin/soap", body=raw,
                         headers={"Content-Type": self.headers.get("Content-Type") or "application/soap+xml"})
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        self.rec["proxied"] = a.mailhost
        self.reply(r.status, data, r.getheader("Content-Type"))
        return True

    def mail_count(self, key):
        with self.sim.lock:
            m = self.sim.stats["mail"].setdefault(self.mail_acct.name,
                                                  {"searches": 0, "folder_lists": 0, "tag_lists": 0})
            m[key] += 1

    def mail_id(self, iid):
        a = self.mail_acct
        if self.mail_delegated and not self.mail_noqualify:
            return "%s:%d" % (a.id, iid)
        return str(iid)

    def enc_folder(self, a, path, counts, sizes):
        """One <folder> as ToXML.encodeFolder with NOTIFY_FIELDS writes it (zm-mailbox
        store/src/java/com/zimbra/cs/service/mail/ToXML.java:289-356, encodeFolderCommon
        489-559): id, uuid, deletable, name, absFolderPath, l (parent id), luuid, f (only if
        flags), u (only if unread > 0), view (omitted when UNKNOWN), rev, ms,
        webOfflineSyncDays, activesyncdisabled, n, s, i4ms, i4next.  Attribute names:
        MailConstants.java 722-1319.  Not modelled: color, url, acl, retention policy, perm
        (an admin's delegated request also gets perm = effective rights), search folders
        (<search>) and mountpoints (<link>): zsim has none."""
        if path == "":
            fid, name, abspath, parent, view = USER_ROOT_ID, "USER_ROOT", "/", ROOT_ID, None
        else:
            fid = a.folder_ids[path]
            name = path.rsplit("/", 1)[-1]
            abspath = "/" + path
            pp = path.rsplit("/", 1)[0] if "/" in path else ""
            parent = a.folder_ids[pp] if pp else USER_ROOT_ID
            view = a.folder_views.get(path)
        u = lambda i: str(uuid.uuid5(uuid.NAMESPACE_URL, "zsim:%s:%d" % (a.id, i)))
        e = {"id": self.mail_id(fid), "uuid": u(fid), "deletable": fid >= 256, "name": name,
             "absFolderPath": abspath, "l": self.mail_id(parent), "luuid": u(parent)}
        if view:
            e["view"] = view
        e.update({"rev": 1, "ms": 1, "webOfflineSyncDays": 0, "activesyncdisabled": False,
                  "n": counts.get(path, 0), "s": sizes.get(path, 0), "i4ms": 1,
                  "i4next": a.next_id})
        return e

    def soap_GetFolderRequest(self, req, ctx, hdrs):
        """zm-mailbox store/src/java/com/zimbra/cs/service/mail/GetFolder.java:66-167: the
        folder tree from USER_ROOT (id 1; or <folder l="id"|path="/p"/>), `depth` levels
        (-1 = all), each subfolder a nested "folder" array.  Subfolders are listed by id
        (inferred: Folder.getSubfolders order not read).  An unknown folder:
        mail.NO_SUCH_FOLDER.  `view`, `visible`, `traverse` are not modelled."""
        self.mail_count("folder_lists")
        a = self.mail_acct
        with self.sim.lock:
            folders = list(a.folders)
            counts = collections.Counter(it.folder for it in a.items.values())
            sizes = collections.Counter()
            for it in a.items.values():
                sizes[it.folder] += it.size
            e = jelem(req, "folder")
            top = ""
            if e:
                if e.get("path") is not None:
                    top = str(e["path"]).strip("/")
                    if top and top not in a.folder_ids:
                        raise SoapFault("mail.NO_SUCH_FOLDER", "no such folder path: %s" % e["path"])
                elif e.get("l") is not None:
                    fid = int(str(e["l"]).split(":")[-1])
                    top = "" if fid == USER_ROOT_ID else a.folder_by_id(fid)
                    if top is None:
                        raise SoapFault("mail.NO_SUCH_FOLDER", "no such folder id: %s" % e["l"])
            depth = int(jval(req, "depth") if jval(req, "depth") is not None else -1)

            def node(path, d):
                el = self.enc_folder(a, path, counts, sizes)
                if d == 0:
                    return el
                kids = [f for f in folders if (f.rsplit("/", 1)[0] if "/" in f else "") == path and f]
                kids.sort(key=lambda f: a.folder_ids[f])
                if kids:
                    el["folder"] = [node(k, d - 1 if d > 0 else d) for k in kids]
                return el
            return {"folder": [node(top, depth)]}

    def soap_GetTagRequest(self, req, ctx, hdrs):
        """zm-mailbox service/mail/GetTag.java:56-61: one <tag> per tag (ToXML.encodeTag).
        zsim models no tags: an empty GetTagResponse, i.e. NO "tag" key at all (an element
        without children) -- a client must read a missing "tag" as none."""
        self.mail_count("tag_lists")
        return {}

    SORTS = {"none", "dateAsc", "dateDesc", "subjAsc", "subjDesc", "sizeAsc", "sizeDesc",
             "idAsc", "idDesc"}

    def soap_SearchRequest(self, req, ctx, hdrs):
        """zm-mailbox store/src/java/com/zimbra/cs/service/mail/Search.java:76-192 with
        index/SearchParams.java:
          - query: absent -> the account's zimbraPrefMailInitialSearch (548; default
            "in:inbox", inferred from the attr's cos default); the subset parse_query knows;
            without is:anywhere, Trash and Junk are excluded (query_match);
          - types (555-560): absent -> conversation; message, contact, document,
            appointment, task, conversation;
          - sortBy (372-377): SortBy names (index/SortBy.java:40-76); unknown -> dateDesc;
            zsim orders by date, subject, size or id, ties by id; none = id order;
          - limit (856-863): absent or <= 0 -> 10, above 1000 -> 1000; offset (622).
        Response (Search.java 111-192, SearchResponse.java): sortBy, offset, the hits, more.
        Hits: m (message), c (conversation: one virtual conversation per message, id -<id>),
        cn (contact), doc (document), appt (appointment), task; each carries sf, the sort
        field (SearchResponse.java:196).  d = date in ms (whole seconds)."""
        self.mail_count("searches")
        a = self.mail_acct
        qs = jval(req, "query")
        if qs is None:
            qs = a.attrs.get("zimbraPrefMailInitialSearch", "in:inbox")
        types = str(jval(req, "types") or jval(req, "groupBy") or "conversation")
        tys = []
        for t in types.split(","):
            t = t.strip().lower()
            if t in KINDS or t == "conversation":
                tys.append(t)
            elif t not in ("wiki", "chat", "note", ""):
                raise SoapFault("service.INVALID_REQUEST", "invalid request: unknown type: %s" % t)
        sort = str(jval(req, "sortBy") or "dateDesc")
        if sort not in self.SORTS:
            sort = "dateDesc" if sort not in ("nameAsc", "nameDesc", "rcptAsc", "rcptDesc") else sort
        lim = jval(req, "limit")
        limit = int(lim) if lim is not None else 10
        limit = 10 if limit <= 0 else min(limit, 1000)
        offset = max(0, int(jval(req, "offset") or 0))
        with self.sim.lock:
            items = list(a.items.values())
        search_tys = set(tys) | ({"message"} if "conversation" in tys else set())
        hits = self.search_items(a, items, qs, search_tys)
        key = {"date": lambda it: (it.date, it.id), "subj": lambda it: (it.subject.lower(), it.id),
               "size": lambda it: (it.size, it.id)}.get(sort[:-3] if sort.endswith("Asc") else
                                                        sort[:-4], lambda it: it.id)
        if sort != "none":
            hits.sort(key=key, reverse=sort.endswith("Desc"))
        page = hits[offset:offset + limit]
        out = {"sortBy": sort, "offset": offset}
        for it in page:
            sf = {"date": it.date, "subj": it.subject, "size": it.size}.get(
                sort[:-3] if sort.endswith("Asc") else sort[:-4], it.id)
            if it.type == "message" and "message" not in tys:
                el = {"id": self.mail_id(-it.id), "d": it.date, "n": 1, "u": 0, "su": it.subject,
                      "m": [{"id": self.mail_id(it.id), "l": self.mail_id(a.folder_ids.get(it.folder, 2))}],
                      "sf": str(sf)}
                out.setdefault("c", []).append(el)
                continue
            el = {"id": self.mail_id(it.id), "l": self.mail_id(a.folder_ids.get(it.folder, 2)),
                  "d": it.date}
            if it.type == "message":
                el.update({"s": it.size, "su": it.subject, "cid": self.mail_id(-it.id)})
                tag = "m"
            elif it.type == "contact":
                el.update({"rev": it.rev, "fileAsStr": it.x("fullName", ""),
                           "_attrs": {"email": it.x("email", ""), "firstName": it.x("firstName", ""),
                                      "fullName": it.x("fullName", "")}})
                tag = "cn"
            elif it.type == "document":
                el.update({"name": it.x("name", ""), "s": it.size, "ver": int(it.x("ver", 1)),
                           "rev": it.rev})
                tag = "doc"
            else:
                el.update({"uid": it.x("uid", ""), "name": it.subject, "s": it.size, "rev": it.rev})
                if it.x("start") is not None:
                    el["dur"] = int(it.x("end", it.x("start"))) - int(it.x("start"))
                    el["inst"] = [{"s": int(it.x("start"))}]
                tag = "appt" if it.type == "appointment" else "task"
            el["sf"] = str(sf)
            out.setdefault(tag, []).append(el)
        out["more"] = offset + len(page) < len(hits)
        return out

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

    def export_fail(self, a, code, text, status=500):
        """A ServiceException out of formatCallback.  real: Formatter.format (Formatter.java
        140-152) -> updateClient(context, e) (333-455): without callback= it is rethrown as
        service.FAILURE "tgz formatter failure" (381) and UserServlet.doGet turns that into
        ServletException (UserServlet.java:411-421) -> HTTP 500 from Jetty.  The body of that
        500 (Jetty's error page) is NOT known from the source: zsim sends plain text
        "<code>: <message>".  With callback=: HTTP 200, the 'fail' page with the fault
        (Formatter.java 405-452)."""
        callback = self.query.get("callback")
        self.rec["error"] = code
        if callback:
            self.reply(200, callback_page(callback, "fail", [js_fault(code, text, None, "Sender")]),
                       'text/html; charset="utf-8"')
            return self.rest_done("export", a.name, 200)
        self.reply(status, ("%s: %s\n" % (code, text)).encode())
        return self.rest_done("export", a.name, status)

    def export_plan(self, a, folder):
        """What ArchiveFormatter.formatCallback writes (zm-mailbox store/src/java/com/zimbra/
        cs/service/formatter/ArchiveFormatter.java:197-393, commit 2b7f9787), as a list of
        ("folder", path) / ("item", Item) entries, plus whether the archive was opened (aos
        != null: else 204 "No data found", 374-378).  Raises SoapFault for the errors."""
        sim = self.sim
        q = self.query
        carbonio = sim.product == "carbonio"
        # searchTypes (214-216; Carbonio 303-308 has no DOCUMENT, WIKI, TASK, NOTE)
        search_types = (["message", "contact", "appointment"] if carbonio else
                        ["message", "contact", "document", "appointment", "task"])
        sys_types = True
        types = q.get("types")
        if types:    # 255-265: Type.setOf, unknown -> mail.INVALID_TYPE; conversation dropped
            search_types = []
            for t in types.split(","):
                t = t.strip().lower()
                if t in ("conversation", "conv", ""):
                    continue
                if t in ("message", "contact", "document", "appointment", "task",
                         "wiki", "chat", "note", "folder", "tag", "search", "flag", "mountpoint"):
                    if t in KINDS:
                        search_types.append(t)
                    continue
                raise SoapFault("mail.INVALID_TYPE", "invalid type: %s" % t)
            sys_types = False     # sysTypes.clear() (261)
        # start/end: UserServletContext.getStartTime/getEndTime (314-330) ->
        # DateUtil.parseDateSpecifier (common/.../util/DateUtil.java:421-447): all digits =
        # ms, else yyyy/mm/dd, mm/dd/yyyy, relative; unparsable -> the default
        # TIME_UNSPECIFIED (-1, Formatter.java:65, 88-93)
        start = parse_date(q["start"]) if "start" in q else None
        end = parse_date(q["end"]) if "end" in q else None
        start = TIME_UNSPECIFIED if start is None else start
        end = TIME_UNSPECIFIED if end is None else end
        plan = []
        opened = [False]

        def save(x):
            # saveItem (419-720): aos is opened (581-583) BEFORE the calendar-item window
            # check (585-590), so an appointment dropped there still makes the answer a 200
            # (an empty archive if nothing else is written)
            if isinstance(x, str):
                plan.append(("folder", x))
                opened[0] = True
                return
            opened[0] = True
            if x.type in CAL_KINDS and (start != TIME_UNSPECIFIED or end != TIME_UNSPECIFIED):
                if not cal_instances(x, start, end):
                    return
            plan.append(("item", x))

        with sim.lock:
            items = list(a.items.values())
            folders = list(a.folders)
        lst = q.get("list")
        if lst:
            # the requestedItems branch (273-279): list=id,... (UserServletContext.java:260-281)
            # resolved by UserServletUtil.resolveItems (62-83): a missing id is logged and its
            # mailItem left null.  No zimbraExportMaxDays check, no search, no window except
            # saveItem's own calendar check.  saveItem(null) throws (mi.getFolderId() on null)
            # inside the one try around the loop: warn(e) and the REST of the list is not
            # exported; the answer is still 200 (204 if nothing was saved before it).
            by_id = {it.id: it for it in items}
            for tok in lst.split(","):
                try:
                    iid = int(tok.strip().split(":")[-1])
                except ValueError:
                    raise SoapFault("service.INVALID_REQUEST", "invalid request: bad item id %s" % tok)
                it = by_id.get(iid)
                if it is not None:
                    save(it)
                    continue
                fp = a.folder_by_id(iid)
                if fp is not None:
                    save(fp)     # a folder id: the folder's own entry, not its contents
                    continue
                self.rec["list_stopped_at"] = iid
                break
            return plan, opened[0]
        query = q.get("query")
        query = query.strip() if query is not None and query.strip() else None
        save_target = None
        if folder:
            # 290-297: a folder target other than USER_ROOT: under:"path" + query; the
            # folder's own entry is saved before the first hit (359-362)
            query = 'under:"/%s"' % folder + ("" if query is None else " " + query)
            save_target = folder
        # 298-309: zimbraExportMaxDays (account, cos, domain inherited; default 0)
        try:
            max_days = int(a.attrs.get("zimbraExportMaxDays", sim.knobs.get("export_max_days") or 0))
        except ValueError:
            max_days = 0
        if max_days > 0:
            if start == TIME_UNSPECIFIED or end == TIME_UNSPECIFIED or end == 0:
                raise SoapFault("mail.EXPORT_PERIOD_NOT_SPECIFIED",
                                "Export period not specified. A period no longer than "
                                "zimbraExportMaxDays=%d days must be specified" % max_days)
            if end - start > max_days * 86400000:
                days = -((start - end) // 86400000)      # Math.ceil
                raise SoapFault("mail.EXPORT_PERIOD_TOO_LONG",
                                "Specified export period is too long. Specified period is %d "
                                "days but zimbraExportMaxDays is %d days" % (days, max_days))
        task_query = query                                    # 310
        query = query or ""
        cal_query = query
        if start != TIME_UNSPECIFIED:                         # 315-318
            query += " after:%d" % start
            cal_query += " appt-start:>=%d" % start
        if end != TIME_UNSPECIFIED:                           # 319-322
            query += " before:%d" % end
            cal_query += " appt-end:<%d" % end
        if query == "":                                       # 324-336
            if sys_types:
                for fo in sorted(folders):                    # SortPath
                    save(fo)
            query = "is:local"
        tmap = [(list(search_types), query)]                  # 337-352
        if start != TIME_UNSPECIFIED or end != TIME_UNSPECIFIED:
            if "appointment" in search_types:
                tmap[0][0].remove("appointment")
                tmap.append((["appointment"], cal_query))
            if "task" in search_types and not carbonio:       # Carbonio has no task branch
                tmap[0][0].remove("task")
                tmap.append((["task"], task_query or "is:local"))
        for tys, qs in tmap:                                  # 353-372
            for it in self.search_items(a, items, qs, tys):
                if save_target is not None:
                    save(save_target)
                    save_target = None
                save(it)
        self.rec["export_queries"] = [[",".join(t), qs.strip()] for t, qs in tmap]
        return plan, opened[0]

    def search_items(self, a, items, qs, types, anywhere_default=False):
        """The items of `types` a mailbox search for `qs` finds (SortBy.NONE: id order)."""
        c = parse_query(qs)
        inc_trash = truthy(self.sim.knobs.get("include_trash_in_search"))
        inc_spam = truthy(self.sim.knobs.get("include_spam_in_search"))
        out = []
        for it in items:
            if it.type not in types:
                continue
            if not query_match(c, a, it, inc_trash, inc_spam):
                continue
            out.append(it)
        return out

    def export(self, a, folder, f):
        sim = self.sim
        try:
            plan, opened = self.export_plan(a, folder)
        except SoapFault as e:
            return self.export_fail(a, e.code, e.text)
        if not opened:
            self.reply(204, b"", None)
            return self.rest_done("export", a.name, 204)
        nitems = sum(1 for k, _ in plan if k == "item")
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
            for kind, x in plan:
                if kind == "folder":
                    fm = {"type": "folder", "path": x, "id": a.folder_ids.get(x)}
                    if a.folder_views.get(x):
                        fm["view"] = a.folder_views[x]
                    self.tar_add(tf, x + ".meta", json.dumps(fm).encode(), 0)
                    continue
                it = x
                data = it.content()
                if it.digest is None:
                    it.digest = hashlib.sha256(data).hexdigest()
                base = "%s/%010d-%s%s" % (it.folder, it.id,
                                          re.sub(r"[^A-Za-z0-9 ._-]", "_", it.subject)[:40],
                                          KIND_EXT.get(it.type, ""))
                self.tar_add(tf, base + ".meta", json.dumps(it.meta()).encode(), it.date)
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
        # counted before the last chunk: a client reading /zsim/stats right after the
        # export must see it (race otherwise)
        self.rest_done("export", a.name, status, out.sent, items=nitems)
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
        counts = {"added": 0, "skipped": 0, "replaced": 0, "failed": 0, "modified": 0}
        ostate = {"contacts": {}, "idmap": {}}   # add_imported_other's per-import state
        itypes = None
        if self.query.get("types"):
            itypes = {t.strip().lower() for t in self.query["types"].split(",")} - {"conversation"}
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
                    a.empty_folders(url_folder, itypes)
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
                            a.add_folder(place(str(meta.get("path", "")).strip("/"), False)[1],
                                         meta.get("view"))
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
                kind = str((meta or {}).get("type") or "message")
                if kind not in KINDS:
                    kind = "message"
                if itypes is not None and kind not in itypes:
                    continue    # addItem 1113-1114: types= filters what is imported
                fold = (meta or {}).get("folder") or os.path.dirname(m.name) or "Inbox"
                fold = re.sub(r"!\d+(?=/|$)", "", fold).strip("/") or "Inbox"
                root, fold = place(fold)
                src_id = (meta or {}).get("id")
                recipe = None
                if meta and meta.get("digest") == digest and isinstance(meta.get("zsim"), dict):
                    recipe = meta["zsim"]
                extra = None
                if kind != "message":
                    extra = {k: meta[k] for k in ("uid", "start", "end", "email", "firstName",
                                                  "fullName", "name", "ver") if k in meta}
                    extra["src_id"] = src_id
                it = Item(0, fold, int((meta or {}).get("date") or m.mtime * 1000), size,
                          recipe=recipe, data=None if recipe else bytes(keep), digest=digest,
                          subject=(meta or {}).get("subject"), type=kind, extra=extra,
                          rev=int((meta or {}).get("rev") or 1))
                if kind != "message":
                    # a generated item whose content is regenerable: keep no bytes
                    it.data = None
                    if hashlib.sha256(gen_other(it)).hexdigest() != digest:
                        it.data = bytes(keep)
                    it.extra.pop("src_id", None)
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
                    if kind == "message":
                        res = a.add_imported(it, resolve, root, digests,
                                             src_id if isinstance(src_id, int) else None)
                    else:
                        if kind == "document":
                            it.extra["src_id"] = src_id
                        res = a.add_imported_other(it, resolve, root, ostate,
                                                   sim.product == "carbonio")
                        if it.extra:
                            it.extra.pop("src_id", None)
                    if res == "unsupported":
                        res = "failed"
                        warnings.append(js_fault("formatter.UNKNOWN_ERROR",
                                                 "unknown error: %s" % m.name, m.name, "Receiver"))
                    counts[res] += 1
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
