"""Download a bundle by name from a zoo index, with every checksum verified."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

from monai.apps.utils import download_url, extractall

from monai_ext.zoo.checksums import check_file
from monai_ext.zoo.index import latest_version, read_index
from monai_ext.zoo.large_files import fetch_large_files

__all__ = ["download_bundle"]


def download_bundle(
    name: str, index: str | Path, bundle_dir: str | Path, version: str | None = None, progress: bool = False
) -> Path:
    """Download ``name`` (``version``, default the latest in the index) into ``bundle_dir/name``.

    The zip is checked against the index's sha256 and the bundle's weights against its
    ``large_files.yml`` before anything is put in ``bundle_dir``: a tampered file is refused with an
    error naming it, and an existing bundle folder is only replaced by a verified one.
    """
    entries = read_index(index)
    version = version or latest_version(entries, name)
    key = f"{name}_v{version}"
    if key not in entries:
        raise KeyError(f"{index}: no {key}; versions of {name}: {sorted(k for k in entries if k.startswith(name))}.")
    entry = entries[key]
    if str(entry.get("hash_type", "sha256")).lower() != "sha256":
        raise ValueError(f"{index}: {key} is indexed with {entry.get('hash_type')!r}; this zoo uses sha256.")
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bundle_dir) as tmp:
        zip_path = Path(tmp) / f"{key}.zip"
        with warnings.catch_warnings():  # MONAI warns that it checks no hash: the next line does
            warnings.filterwarnings("ignore", message="No hash value provided")
            download_url(url=entry["source"], filepath=zip_path, hash_val=None, progress=progress)
        check_file(zip_path, entry["checksum"], f"the index entry {key} ({entry['source']})")
        extracted = Path(tmp) / "extracted"
        extractall(filepath=zip_path, output_dir=extracted, has_base=True)
        if not (extracted / name / "configs" / "metadata.json").is_file():
            raise ValueError(f"{entry['source']}: the zip does not hold {name}/configs/metadata.json.")
        fetch_large_files(extracted / name, progress=progress)
        target = bundle_dir / name
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(extracted / name), target)
    return target
