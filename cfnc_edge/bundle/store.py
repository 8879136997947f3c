"""Versioned bundle folders: atomic commits, one writer at a time, rollback.

    <bundle>/current -> versions/000007     the state readers see (a relative link)
    <bundle>/versions/000007/               one complete state: manifest.json + files
    <bundle>/versions/000006/               its parent, kept for `cfnc-edge bundle rollback`
    <bundle>/manifest.json -> current/...   links for people and tools that look
    <bundle>/model.onnx -> current/...      at the bundle folder itself
    <bundle>/.lock                          the writers' lock

A writer builds the new state in versions/.staging-*, renames it to the next
number and replaces `current` in one `os.replace` of a link: a reader that
resolved `current` once sees either the old state or the new one. A crash
leaves at most a staging folder or an unreferenced version, both removed by
the next writer. Unchanged files are hard links, so a commit costs no copy.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from cfnc_edge.bundle.files import atomic_link, fsync_dir
from cfnc_edge.errors import BundleError

CURRENT = "current"
VERSIONS = "versions"
LOCK = ".lock"
STAGING = ".staging-"
# versions kept besides the current one and its parent: a reader that resolved
# `current` just before two quick commits still finds its files
KEEP_RECENT = 3


def resolve(root: Path) -> Path:
    """The folder holding the current state: the target of `current`, else the
    root itself (a bundle written before versioning, or a version folder)."""
    link = root / CURRENT
    if link.exists():
        target = Path(os.path.realpath(link))
        if link.is_symlink() and target.parent != Path(os.path.realpath(root / VERSIONS)):
            # another bundle's state would be read under this bundle's name
            raise BundleError(f"{link} points to {target}, not to a version of this bundle in {root / VERSIONS}; "
                              "re-create the bundle or restore it with `cfnc-edge bundle rollback`")
        return target
    if root.is_symlink():  # <bundle>/current given directly: pin the version it names now
        return Path(os.path.realpath(root))
    return root


def version_number(folder: Path) -> int | None:
    return int(folder.name) if folder.name.isdigit() else None


def _versions(root: Path) -> list[Path]:
    folder = root / VERSIONS
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


@contextmanager
def writer_lock(root: Path):
    """Hold the bundle's exclusive writer lock (re-entrant within a thread)."""
    real = Path(os.path.realpath(root))
    if real.parent.name == VERSIONS and (real.parent.parent / CURRENT).exists():
        # written as a bundle of its own, it would turn the version's files into links: the bundle is lost
        raise BundleError(f"{root} is a version inside the bundle {real.parent.parent}; write to that "
                          "bundle folder itself, or to a new folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, or a folder we may not write
        raise BundleError(f"cannot make the bundle folder {root}: {exc.strerror or exc}; "
                          "choose another --out") from None
    # one lock object per path and process, so nested holders share it
    lock = FileLock(root / LOCK, timeout=0, is_singleton=True)
    try:
        lock.acquire()
    except Timeout:
        raise BundleError(f"{root} is being written by another cfnc-edge process (lock {root / LOCK}); "
                          "wait for it to finish or write to another folder") from None
    try:
        yield
    finally:
        lock.release()


def start(root: Path, base: Path | None, names: list[str]) -> Path:
    """A staging folder holding `names` from `base` (hard links). Call under the lock."""
    versions = root / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    for stale in versions.glob(f"{STAGING}*"):  # left by a writer that died
        shutil.rmtree(stale, ignore_errors=True)
    staging = versions / f"{STAGING}{uuid.uuid4().hex}"
    staging.mkdir()
    for name in names:
        dest = staging / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(base / name, dest)
        except OSError:  # a file system without hard links
            shutil.copy2(base / name, dest)
    return staging


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def next_number(root: Path) -> int:
    found = _versions(root)
    return int(found[-1].name) + 1 if found else 1


def commit(root: Path, staging: Path, number: int, names: list[str], flat: list[str] = ()) -> Path:
    """Make the staged folder the current state; return its final path. `flat`:
    files of a pre-versioning bundle in the root, removed once committed. Call under the lock."""
    fsync_dir(staging)
    final = root / VERSIONS / f"{number:06d}"
    os.rename(staging, final)
    fsync_dir(root / VERSIONS)
    atomic_link(f"{VERSIONS}/{final.name}", root / CURRENT)
    fsync_dir(root)
    _update_root_links(root, names, flat)
    return final


def set_current(root: Path, folder: Path) -> None:
    """Point `current` at an existing version (rollback). Call under the lock."""
    atomic_link(f"{VERSIONS}/{folder.name}", root / CURRENT)
    fsync_dir(root)
    _update_root_links(root, sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()))


def collect(root: Path, keep: set[str]) -> None:
    """Remove versions that are neither kept nor among the most recent. Call under the lock."""
    recent = {p.name for p in _versions(root)[-KEEP_RECENT:]}
    for p in _versions(root):
        if p.name not in keep | recent:
            shutil.rmtree(p, ignore_errors=True)


def _update_root_links(root: Path, names: list[str], flat: list[str] = ()) -> None:
    """Links in the root to every top-level entry of the current state; stale
    links and the files of a pre-versioning bundle go, nothing else in the root."""
    top = {n.split("/")[0] for n in names}
    for name in flat:
        p = root / name
        if name.split("/")[0] not in top and p.is_file() and not p.is_symlink():
            p.unlink()
    for name in sorted(top):
        if (root / name).is_dir() and not (root / name).is_symlink():
            shutil.rmtree(root / name)  # a pre-versioning engines/ folder, now inside the version
        atomic_link(f"{CURRENT}/{name}", root / name)
    for p in root.iterdir():
        if p.name not in top and p.is_symlink() and os.readlink(p).startswith(f"{CURRENT}/"):
            p.unlink()


def repair(root: Path) -> Path | None:
    """A bundle copied without its links has a real `current` folder: make it a
    version again and return its new place. Call under the lock."""
    link = root / CURRENT
    if not link.is_dir() or link.is_symlink():
        return None
    (root / VERSIONS).mkdir(exist_ok=True)
    target = root / VERSIONS / f"{next_number(root):06d}"
    os.rename(link, target)
    atomic_link(f"{VERSIONS}/{target.name}", link)
    return target
