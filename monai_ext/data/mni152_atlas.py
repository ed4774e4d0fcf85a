"""A brain atlas from a real template that ships inside a package's own files: MNI152 2009a with tissue labels.

nilearn's wheel carries the ICBM 2009a nonlinear symmetric template (T1, and grey- and white-matter
probability maps; 197 x 233 x 189 voxels of 1 mm; Fonov et al. 2009 / 2011, copyright McConnell
Brain Imaging Centre, free use with the copyright notice, see the bundles' ``docs/data_license.txt``).
Nothing is downloaded: the files are read from the installed package (``pip install nilearn``; only
its data files are used, so it may be installed without its dependencies).

The label map is derived from the probability maps: 1 = grey matter, 2 = white matter wherever that
tissue's probability is the larger one and above one half; the rest is background. The T1 is
scaled to [0, 1] (the OASIS bundles' intensity range).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_ext.io.nifti import save_nifti

__all__ = ["MNI152_LABEL_NAMES", "mni152_template_dir", "mni152_tissue_atlas"]

MNI152_LABEL_NAMES = {1: "gray matter", 2: "white matter"}
_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def mni152_template_dir() -> Path:
    """The folder of nilearn's packaged MNI152 files (found without importing nilearn)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the MNI152 atlas is read from nilearn's files: pip install nilearn (--no-deps is enough)."
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    missing = [name for name in _FILES.values() if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: nilearn does not hold {missing}.")
    return folder


def mni152_tissue_atlas(cache_dir: str | Path) -> tuple[Path, Path, dict[int, str]]:
    """Write (once) the atlas image and label map into ``cache_dir``; return ``(image, label, names)``."""
    cache_dir = Path(cache_dir)
    image_path, label_path = cache_dir / "mni152_t1.nii.gz", cache_dir / "mni152_tissue_labels.nii.gz"
    if not (image_path.is_file() and label_path.is_file()):
        folder = mni152_template_dir()
        t1 = nib.load(folder / _FILES["t1"])
        gm, wm = (np.asarray(nib.load(folder / _FILES[k]).dataobj, dtype=np.float32) / 255.0 for k in ("gm", "wm"))
        labels = np.zeros(gm.shape, np.uint8)
        labels[(gm >= wm) & (gm > 0.5)] = 1
        labels[(wm > gm) & (wm > 0.5)] = 2
        save_nifti(image_path, np.asarray(t1.dataobj, dtype=np.float32) / 255.0, t1.affine, np.float32)
        save_nifti(label_path, labels, t1.affine, np.uint8)
    return image_path, label_path, dict(MNI152_LABEL_NAMES)
