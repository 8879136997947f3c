"""Errors a user can act on.

Everything the CLI reports as a one-line message (instead of a traceback)
derives from :class:`CfncError`.
"""


class CfncError(Exception):
    """Base class: the message says what is wrong and what to do."""


class DataError(CfncError):
    """Unreadable image, wrong mask, empty or malformed dataset folder."""


class BundleError(CfncError):
    """Missing, tampered or incompatible model bundle."""


class WeightsError(CfncError):
    """Pretrained backbone weights that are not available offline."""


class CheckpointError(CfncError):
    """A training checkpoint that cannot be resumed from."""
