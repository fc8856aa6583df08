"""Files and directories of the local stack: secrets private from creation, and paths a
service's own system user must be able to reach."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Collection
from pathlib import Path


def write_private(path: Path, text: str, owner: str | None = None) -> None:
    """Write ``text`` to a file only its owner may read or write (mode 0600).

    The mode is set when the file is created (and on the open descriptor for a file that
    already exists), before any byte is written: ``write_text`` then ``chmod`` would leave
    the secret readable in between. ``owner`` hands the file to that system user.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(fd, 0o600)
        if owner is not None:
            user = pwd.getpwnam(owner)
            os.fchown(fd, user.pw_uid, user.pw_gid)
        out.write(text)


def user_ids(name: str) -> tuple[int, frozenset[int]]:
    """A system user's uid and every group id it belongs to."""
    user = pwd.getpwnam(name)
    return user.pw_uid, frozenset(os.getgrouplist(name, user.pw_gid))


def first_unreachable(path: Path, uid: int, gids: Collection[int]) -> Path | None:
    """The first directory on the way to (and including) ``path`` that the user ``uid``
    (in groups ``gids``) may not enter, or None when it can reach it.

    Reads mode bits as the kernel applies them (owner, else group, else others); ACLs are
    not consulted. Directories that do not exist yet are skipped: whoever creates them
    decides their owner.
    """
    if uid == 0:
        return None
    for directory in (*reversed(path.parents), path):
        try:
            info = directory.stat()
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(info.st_mode):
            return None
        if info.st_uid == uid:
            search = stat.S_IXUSR
        elif info.st_gid in gids:
            search = stat.S_IXGRP
        else:
            search = stat.S_IXOTH
        if not info.st_mode & search:
            return directory
    return None


def describe_owner(path: Path) -> str:
    """``drwx------ root:root``: what decides who may enter ``path``."""
    info = path.stat()
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        user = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return f"{stat.filemode(info.st_mode)} {user}:{group}"
