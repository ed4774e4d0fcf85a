"""A bundle's ``large_files.yml``: fetch what is missing, and check every file against its sha256.

MONAI's ``download_large_files`` downloads entries but skips files that are already present without
checking them; a zoo must also refuse weights that were changed after publishing, hence this.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import yaml
from monai.apps.utils import download_url

from monai_ext.zoo.checksums import ChecksumError, check_file

__all__ = ["large_file_entries", "fetch_large_files"]

_NAMES = ("large_files.yml", "large_files.yaml")


def large_file_entries(bundle_path: str | Path) -> list[dict]:
    """The entries of the bundle's ``large_files.yml`` (empty when it has none)."""
    bundle_path = Path(bundle_path)
    for name in _NAMES:
        path = bundle_path / name
        if path.is_file():
            try:
                entries = (yaml.safe_load(path.read_text()) or {}).get("large_files", [])
            except yaml.YAMLError as error:
                raise ValueError(f"{path}: not valid YAML ({error}).") from error
            for entry in entries:
                if not entry.get("path") or not entry.get("url"):
                    raise ValueError(f"{path}: every entry needs a path and a url, got {entry}.")
            return list(entries)
    return []


def fetch_large_files(bundle_path: str | Path, progress: bool = False) -> list[Path]:
    """Download the missing large files of a bundle and check all of them against their declared
    sha256 (entries without a hash are downloaded but cannot be checked). Returns their paths."""
    bundle_path = Path(bundle_path)
    paths = []
    for entry in large_file_entries(bundle_path):
        path = bundle_path / entry["path"]
        hash_type = str(entry.get("hash_type") or "").lower()
        hash_val = entry.get("hash_val") or None
        if not path.is_file():
            with warnings.catch_warnings():  # MONAI warns that it checks no hash: check_file does, below
                warnings.filterwarnings("ignore", message="No hash value provided")
                download_url(url=entry["url"], filepath=path, hash_val=None, progress=progress)
        if hash_val is not None:
            if hash_type != "sha256":
                raise ChecksumError(
                    f"{bundle_path}/large_files.yml: {entry['path']} must use sha256, got {hash_type!r}."
                )
            check_file(path, hash_val, f"{bundle_path.name}/large_files.yml")
        paths.append(path)
    return paths
