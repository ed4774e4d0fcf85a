"""The MONAI model zoo's bundle checks, run offline on one bundle folder.

As the model zoo's ``ci/verify_bundle.py`` checks a bundle before it is published: the required
files, the large files (downloaded when missing and checked against their sha256), the version
and its changelog entry, the metadata against a JSON schema (MONAI's ``verify_metadata``, with the
schema of this zoo, :file:`metadata_schema.json`, in place of the downloaded one), the network's
input and output shapes as declared (MONAI's ``verify_net_in_out``), and a TorchScript export
(MONAI's ``ckpt_export``) unless the metadata declares ``"torchscript": false``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from monai_ext.zoo.checksums import sha256_file
from monai_ext.zoo.large_files import fetch_large_files

__all__ = ["verify_bundle", "SCHEMA_PATH", "REQUIRED_FILES"]

SCHEMA_PATH = Path(__file__).with_name("metadata_schema.json")
REQUIRED_FILES = ("configs/metadata.json", "configs/inference.json", "docs/README.md", "LICENSE")


def verify_bundle(bundle_path: str | Path, weights: bool = True, net_id: str = "network_def") -> list[str]:
    """Run the checks; return the names of those that passed, raise on the first that fails.

    Args:
        bundle_path: the bundle folder.
        weights: also check the large files and export TorchScript from ``models/model.pt``
            (False: only what needs no trained weights).
        net_id: the network's id in ``configs/inference.json``.
    """
    from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

    bundle_path = Path(bundle_path)
    passed = []
    missing = [name for name in REQUIRED_FILES if not (bundle_path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{bundle_path}: missing {missing}.")
    passed.append("required files")
    if weights:
        if not fetch_large_files(bundle_path):
            raise ValueError(f"{bundle_path}: large_files.yml lists no weights.")
        passed.append("large files (sha256)")
    meta_file = bundle_path / "configs" / "metadata.json"
    metadata = json.loads(meta_file.read_text())
    version = metadata.get("version")
    if version not in metadata.get("changelog", {}):
        raise ValueError(f"{meta_file}: version {version!r} has no changelog entry.")
    figures = metadata.get("eval_metrics", {})
    if weights and not any(isinstance(v, (int, float)) and v for v in figures.values()):
        raise ValueError(f"{meta_file}: eval_metrics {figures} are placeholders, not measured figures.")
    passed.append("version and changelog")
    with tempfile.TemporaryDirectory() as tmp:
        schema = Path(tmp) / "schema.json"
        shutil.copy2(SCHEMA_PATH, schema)
        verify_metadata(
            meta_file=str(meta_file), filepath=str(schema), hash_val=sha256_file(schema), hash_type="sha256"
        )
    passed.append("metadata schema")
    config_file = str(bundle_path / "configs" / "inference.json")
    verify_net_in_out(net_id=net_id, meta_file=str(meta_file), config_file=config_file, bundle_root=str(bundle_path))
    passed.append("network input / output shapes")
    if weights and metadata.get("torchscript", True):
        with tempfile.TemporaryDirectory() as tmp:
            ckpt_export(
                net_id=net_id,
                filepath=str(Path(tmp) / "model.ts"),
                ckpt_file=str(bundle_path / "models" / "model.pt"),
                meta_file=str(meta_file),
                config_file=config_file,
                bundle_root=str(bundle_path),
            )
        passed.append("TorchScript export")
    return passed
