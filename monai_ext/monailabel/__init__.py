"""MONAI Label integration: registration bundles served as segmentation by label propagation.

``monailabel`` is optional (the project's ``monailabel`` extra); importing this package needs it.
"""

from .label_propagation import LabelPropagationTask, Reference

__all__ = ["LabelPropagationTask", "Reference"]
