"""The home of geometry: the displacement-field convention and every operation on fields, points and
grids that the rest of ``monai_ext`` uses.

- :mod:`.ddf`: the DDF convention and operations on one grid (warping, composition, integration,
  resizing);
- :mod:`.converters`: ICON maps and world (ITK / nibabel) displacements;
- :mod:`.sampling`: normalised coordinates and the one grid_sample-based sampler at points;
- :mod:`.displacement_chain`: fields that act on coordinates in turn (ICON's Down / TwoStep);
- :mod:`.world`: fixed-to-moving world geometry, reading a moving image of another size and spacing;
- :mod:`.normalized_affine`: resampling through an affine map of normalised coordinates;
- :mod:`.affines`: per-item voxel-to-world affines of a batch and the voxel spacing;
- :mod:`.orientation`: exact reordering of array axes into RAS storage order and back;
- :mod:`.voxel_size`: an image resampled to another voxel size in the same normalised frame;
- :mod:`.filtering`: separable filtering with edge replication (Gaussian smoothing of fields and images).

This package imports only torch, numpy and MONAI: networks, solvers, losses and metrics build on it.
"""

from .affines import affine_spacing, batch_affines
from .converters import as_numpy, ddf_to_icon_map, ddf_to_world_displacement, icon_map_to_ddf, world_displacement_to_ddf
from .ddf import (
    PADDING_MODES,
    WARP_MODES,
    check_ddf,
    compose_ddf,
    identity_grid,
    integrate_velocity,
    resize_ddf,
    unit_scale,
    warp_image,
    warp_label,
)
from .displacement_chain import chain_displacement, evaluate_displacement_chain
from .filtering import replicate_separable_filtering
from .normalized_affine import RESAMPLE_MODES, resample_normalized_affine
from .orientation import (
    canonical_affine,
    canonical_axes,
    canonical_to_stored_matrix,
    ddf_from_canonical,
    from_canonical,
    points_to_canonical,
    to_canonical,
)
from .sampling import (
    grid_sample_at,
    normalized_identity,
    normalized_scale,
    normalized_to_voxel,
    sample_at_points,
    voxel_to_normalized,
)
from .voxel_size import endpoint_shape, resample_to_spacing
from .world import fixed_to_moving_matrix, sample_moving, transform_points, warp_moving

__all__ = [
    "replicate_separable_filtering",
    "endpoint_shape",
    "resample_to_spacing",
    "WARP_MODES",
    "PADDING_MODES",
    "RESAMPLE_MODES",
    "identity_grid",
    "warp_image",
    "warp_label",
    "compose_ddf",
    "integrate_velocity",
    "resize_ddf",
    "unit_scale",
    "check_ddf",
    "icon_map_to_ddf",
    "ddf_to_icon_map",
    "ddf_to_world_displacement",
    "world_displacement_to_ddf",
    "as_numpy",
    "normalized_scale",
    "normalized_identity",
    "voxel_to_normalized",
    "normalized_to_voxel",
    "grid_sample_at",
    "sample_at_points",
    "chain_displacement",
    "evaluate_displacement_chain",
    "fixed_to_moving_matrix",
    "transform_points",
    "sample_moving",
    "warp_moving",
    "canonical_axes",
    "to_canonical",
    "from_canonical",
    "canonical_to_stored_matrix",
    "canonical_affine",
    "ddf_from_canonical",
    "points_to_canonical",
    "resample_normalized_affine",
    "batch_affines",
    "affine_spacing",
]
