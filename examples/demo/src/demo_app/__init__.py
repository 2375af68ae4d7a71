"""Pick the newest release from a list of version strings."""

from __future__ import annotations

import attrs
from packaging.version import InvalidVersion, Version

__all__ = ["Release", "newest"]


@attrs.frozen(order=True)
class Release:
    """A release, ordered by its parsed version."""

    version: Version = attrs.field(converter=Version)


def newest(versions: list[str], *, prereleases: bool = False) -> Release | None:
    """The newest valid release in `versions`, ignoring strings that are not versions.

    Pre-releases count only when `prereleases` is true. Returns None when nothing qualifies.
    """
    releases = []
    for text in versions:
        try:
            release = Release(text)
        except InvalidVersion:
            continue
        if release.version.is_prerelease and not prereleases:
            continue
        releases.append(release)
    return max(releases, default=None)
