"""MONAI Label integration: registration bundles served as segmentation by label propagation, and
trained from the datastore's labelled images.

``monailabel`` is optional (the project's ``monailabel`` extra); importing this package needs it.
"""

from .label_propagation import LabelPropagationTask, Reference
from .registration_training import RegistrationTrainTask

__all__ = ["LabelPropagationTask", "Reference", "RegistrationTrainTask"]
