"""A bundle zoo: package trained bundles as MONAI-downloadable zips, index them, download and verify them.

- :mod:`.package`: ``<name>_v<version>.zip`` with the weights, ``large_files.yml`` (URL + sha256),
  and a ``metadata.json`` carrying version, changelog and the model's measured evaluation;
- :mod:`.index`: the zoo's ``model_info.json`` (name_version -> checksum and source URL);
- :mod:`.download`: a bundle by name from an index, every checksum verified;
- :mod:`.verify`: the MONAI model zoo's bundle checks, offline.

Command line: ``python -m monai_ext.zoo {package,list,download,verify} ...``.
"""

from .checksums import ChecksumError, check_file, sha256_file
from .download import download_bundle
from .index import latest_version, read_index, update_index
from .package import package_bundle
from .verify import verify_bundle

__all__ = [
    "ChecksumError",
    "check_file",
    "sha256_file",
    "package_bundle",
    "read_index",
    "update_index",
    "latest_version",
    "download_bundle",
    "verify_bundle",
]
