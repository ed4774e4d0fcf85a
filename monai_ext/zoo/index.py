"""The zoo index, in the MONAI model zoo's ``model_info.json`` form.

``{"<name>_v<version>": {"checksum": <sha256 of the zip>, "hash_type": "sha256", "source": <URL of
the zip>}}``; the MONAI zoo keeps md5 checksums in the same place, this zoo says which hash it uses.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from monai_ext.io.atomic import atomic_write_path

__all__ = ["read_index", "update_index", "latest_version", "split_key"]

_KEY = re.compile(r"^(?P<name>.+)_v(?P<version>\d+(?:\.\d+)*)$")


def split_key(key: str) -> tuple[str, str]:
    """``"gsmorph_cardiac_v0.2.0"`` -> ``("gsmorph_cardiac", "0.2.0")``."""
    match = _KEY.match(key)
    if match is None:
        raise ValueError(f"index key {key!r} is not <name>_v<version>.")
    return match["name"], match["version"]


def read_index(index: str | Path) -> dict[str, dict]:
    """The index at a URL (``http(s)://``, ``file://``) or a local path."""
    text = str(index)
    try:
        if re.match(r"^[a-z]+://", text):
            with urllib.request.urlopen(text, timeout=60) as response:  # noqa: S310 (URLs the user names)
                data = json.loads(response.read().decode("utf-8"))
        else:
            data = json.loads(Path(text).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{index}: cannot read the zoo index ({error}).") from error
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "source" in v for v in data.values()):
        raise ValueError(f"{index}: not a model_info.json index (name_version -> {{checksum, source}}).")
    return data


def update_index(index_path: str | Path, key: str, checksum: str, source: str) -> dict[str, dict]:
    """Add (or replace) one entry of a local index file and write it atomically; returns the index."""
    split_key(key)
    index_path = Path(index_path)
    data = read_index(index_path) if index_path.exists() else {}
    data[key] = {"checksum": checksum, "hash_type": "sha256", "source": source}
    data = dict(sorted(data.items()))
    with atomic_write_path(index_path) as tmp:
        tmp.write_text(json.dumps(data, indent=4) + "\n")
    return data


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def latest_version(index: dict[str, dict], name: str) -> str:
    """The highest version of bundle ``name`` in ``index``."""
    versions = [v for n, v in map(split_key, index) if n == name]
    if not versions:
        names = sorted({n for n, _ in map(split_key, index)})
        raise KeyError(f"no bundle {name!r} in the index; it lists {names}.")
    return max(versions, key=_version_key)
