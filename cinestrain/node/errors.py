"""Exceptions of the node, each a subclass of the fitting built-in."""

from __future__ import annotations


class NodeError(Exception):
    """Base of the node's errors."""


class SpoolError(NodeError, OSError):
    """An instance could not be written to the spool."""


class OutOfSpaceError(SpoolError):
    """Free space is below ``storage.min_free_mb``: refuse rather than fill the disk."""


class InvalidInstanceError(NodeError, ValueError):
    """A received dataset cannot be parsed or lacks the UIDs it needs."""


class ExportError(NodeError, RuntimeError):
    """Results could not be delivered to a destination."""


class UnknownJobError(NodeError, LookupError):
    """No job with that id in the index."""


class UnknownDestinationError(NodeError, LookupError):
    """No destination of that name in the configuration."""


class ViewerError(NodeError, RuntimeError):
    """The local OHIF viewer (Orthanc + nginx) cannot start or run."""
