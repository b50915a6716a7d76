"""`mistgrid backup FROMLOCAL TOPATH`: versioned backups, as Tahoe's `backup`.

Each run makes a snapshot `TOPATH/Archives/<UTC time>` and points `TOPATH/Latest` at it.
A small SQLite database (`NODEDIR/private/backupdb.sqlite`, tables named as Tahoe's)
remembers each local file's size, mtime and ctime and the cap it was stored as: a file
that has not changed is not read again, and a directory whose contents have not changed
reuses the directory made for it last time. Snapshot directories are immutable
directories (`URI:DIR2-CHK:`), as Tahoe makes them, so Tahoe reads mistgrid's archives
and the other way round.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import click

from .aliases import load_aliases, split_where, uri_path
from .copy import _upload
from .data import KeptConnection, node_option
from .files import call, checked
from .progress import byte_progress

SCHEMA = """
CREATE TABLE IF NOT EXISTS version (version INTEGER);
CREATE TABLE IF NOT EXISTS local_files (path VARCHAR(1024) PRIMARY KEY, size INTEGER,
    mtime NUMBER, ctime NUMBER, fileid INTEGER);
CREATE TABLE IF NOT EXISTS caps (fileid INTEGER PRIMARY KEY AUTOINCREMENT,
    filecap VARCHAR(256) UNIQUE);
CREATE TABLE IF NOT EXISTS last_upload (fileid INTEGER PRIMARY KEY, last_uploaded TIMESTAMP,
    last_checked TIMESTAMP);
CREATE TABLE IF NOT EXISTS directories (dirhash VARCHAR(256) PRIMARY KEY,
    dircap VARCHAR(256), last_uploaded TIMESTAMP, last_checked TIMESTAMP);
"""
VCS_NAMES = ["CVS", "RCS", "SCCS", ".git", ".gitignore", ".cvsignore", ".svn", ".arch-ids",
             "{arch}", "=RELEASE-ID", "=meta-update", "=update", ".bzr", ".bzrignore",
             ".bzrtags", ".hg", ".hgignore", "_darcs"]


class BackupDB:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)
        if self.db.execute("SELECT COUNT(*) FROM version").fetchone()[0] == 0:
            self.db.execute("INSERT INTO version (version) VALUES (2)")
        self.db.commit()
        os.chmod(path, 0o600)

    def file_cap(self, path: str, st: os.stat_result) -> str | None:
        row = self.db.execute(
            "SELECT size, mtime, ctime, filecap FROM local_files JOIN caps USING (fileid) "
            "WHERE path = ?", (path,)).fetchone()
        if row is None or tuple(row[:3]) != (st.st_size, st.st_mtime, st.st_ctime):
            return None
        return str(row[3])

    def remember_file(self, path: str, st: os.stat_result, cap: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO caps (filecap) VALUES (?)", (cap,))
        (fileid,) = self.db.execute("SELECT fileid FROM caps WHERE filecap = ?",
                                    (cap,)).fetchone()
        self.db.execute("INSERT OR REPLACE INTO local_files VALUES (?, ?, ?, ?, ?)",
                        (path, st.st_size, st.st_mtime, st.st_ctime, fileid))
        now = time.time()
        self.db.execute("INSERT OR REPLACE INTO last_upload VALUES (?, ?, ?)",
                        (fileid, now, now))
        self.db.commit()

    def directory_cap(self, dirhash: str) -> str | None:
        row = self.db.execute("SELECT dircap FROM directories WHERE dirhash = ?",
                              (dirhash,)).fetchone()
        return None if row is None else str(row[0])

    def remember_directory(self, dirhash: str, cap: str) -> None:
        now = time.time()
        self.db.execute("INSERT OR REPLACE INTO directories VALUES (?, ?, ?, ?)",
                        (dirhash, cap, now, now))
        self.db.commit()


class _Counts:
    def __init__(self) -> None:
        self.uploaded = self.reused = self.dirs_made = self.dirs_reused = self.skipped = 0


def _excluded(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


class _Entry:
    """One name of a scanned folder: a file (with its lstat), a folder (with its
    entries), or something skipped (symbolic links and special files). (A plain class:
    the CLI starts faster without attrs.)"""

    __slots__ = ("entries", "kind", "path", "stat")

    def __init__(self, path: str, kind: str, stat: os.stat_result | None = None,
                 entries: dict[str, _Entry] | None = None) -> None:
        self.path, self.kind, self.stat = path, kind, stat  # kind: "file", "dir", "skip"
        self.entries = entries or {}


def _scan(folder: str, patterns: list[str]) -> dict[str, _Entry]:
    """The tree under `folder`, each file stat'ed once (os.scandir: the kinds come with
    the listing)."""
    found: dict[str, _Entry] = {}
    with os.scandir(folder) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if _excluded(entry.name, patterns):
            continue
        if entry.is_symlink():
            found[entry.name] = _Entry(entry.path, "skip")
        elif entry.is_dir(follow_symlinks=False):
            found[entry.name] = _Entry(entry.path, "dir", None, _scan(entry.path, patterns))
        elif entry.is_file(follow_symlinks=False):
            found[entry.name] = _Entry(entry.path, "file", entry.stat(follow_symlinks=False))
        else:
            found[entry.name] = _Entry(entry.path, "skip")
    return found


def _total(entries: dict[str, _Entry]) -> int:
    return sum(e.stat.st_size if e.stat is not None else _total(e.entries)
               for e in entries.values())


def _backup_dir(node_dir: Path, db: BackupDB, entries: dict[str, _Entry], counts: _Counts,
                advance: Any, verbose: bool, kept: KeptConnection) -> str:
    """The cap of an immutable snapshot directory for a scanned folder (made or reused)."""
    children: dict[str, Any] = {}
    for name, entry in entries.items():
        if entry.kind == "dir":
            cap = _backup_dir(node_dir, db, entry.entries, counts, advance, verbose, kept)
            children[name] = ["dirnode", {"ro_uri": cap, "metadata": {}}]
        elif entry.kind == "file" and entry.stat is not None:
            st = entry.stat
            key = os.path.abspath(entry.path)
            cap_or_none = db.file_cap(key, st)
            if cap_or_none is None:
                cap = _upload(node_dir, Path(entry.path), "uri", advance, kept)
                db.remember_file(key, st, cap)
                counts.uploaded += 1
                if verbose:
                    click.echo(f"uploaded {entry.path}", err=True)
            else:
                cap = cap_or_none
                counts.reused += 1
            children[name] = ["filenode", {"ro_uri": cap, "metadata": {
                "mtime": st.st_mtime, "ctime": st.st_ctime, "size": st.st_size}}]
        else:
            counts.skipped += 1
    body = json.dumps({n: [k, {"ro_uri": v["ro_uri"]}] for n, (k, v) in children.items()},
                      sort_keys=True).encode()
    dirhash = hashlib.sha256(body).hexdigest()
    known = db.directory_cap(dirhash)
    if known is not None:
        counts.dirs_reused += 1
        return known
    made = checked(*call(node_dir, "POST", "uri?t=mkdir-immutable",
                         json.dumps(children).encode()), "mkdir").decode().strip()
    db.remember_directory(dirhash, made)
    counts.dirs_made += 1
    return made


@click.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("target")
@click.option("--exclude", multiple=True, help="Leave out names matching this pattern.")
@click.option("--exclude-from", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file of patterns to leave out, one per line.")
@click.option("--exclude-vcs", is_flag=True, help="Leave out version-control files.")
@click.option("-v", "--verbose", is_flag=True, help="Name each file uploaded.")
@node_option
def backup(source: Path, target: str, exclude: tuple[str, ...], exclude_from: Path | None,
           exclude_vcs: bool, verbose: bool, node_dir: Path) -> None:
    """Back SOURCE up into TARGET/Archives/<time>, and point TARGET/Latest at it."""
    patterns = list(exclude)
    if exclude_from is not None:
        patterns += [line.strip() for line in exclude_from.read_text().splitlines()
                     if line.strip()]
    if exclude_vcs:
        patterns += VCS_NAMES
    cap, names = split_where(target, load_aliases(node_dir))
    db = BackupDB(node_dir / "private" / "backupdb.sqlite")
    counts = _Counts()
    tree = _scan(str(source), patterns)
    kept = KeptConnection()
    try:
        with byte_progress("backing up", _total(tree)) as advance:
            snapshot = _backup_dir(node_dir, db, tree, counts, advance, verbose, kept)
    finally:
        kept.close_all()
    stamp = time.strftime("%Y-%m-%d_%H:%M:%SZ", time.gmtime())
    # (Archives, and the target itself, are made on the way when missing)
    checked(*call(node_dir, "PUT", uri_path(cap, [*names, "Archives", stamp]) + "?t=uri",
                  snapshot.encode()), "link")
    checked(*call(node_dir, "PUT", uri_path(cap, [*names, "Latest"]) + "?t=uri",
                  snapshot.encode()), "link")
    click.echo(f" {counts.uploaded} files uploaded ({counts.reused} reused), "
               f"{counts.skipped} files skipped, {counts.dirs_made} directories created "
               f"({counts.dirs_reused} reused)")
    if counts.skipped and verbose:
        click.echo("(symbolic links and special files are skipped)", err=True)

