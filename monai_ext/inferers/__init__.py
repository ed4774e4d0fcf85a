"""Inferers that drive registration networks."""

from .dio_inferer import DIOInferer
from .instance_optimization import InstanceOptimizationInferer
from .network_grid_inferer import NetworkGridInferer
from .registration_inferer import IO_MODES, io_method_name, registration_inferer

__all__ = [
    "DIOInferer",
    "InstanceOptimizationInferer",
    "NetworkGridInferer",
    "IO_MODES",
    "registration_inferer",
    "io_method_name",
]
