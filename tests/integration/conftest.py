"""Fixtures shared by integration tests: the driver conformance cases of every stack."""

from archive_stack_support import archive_driver_case

__all__ = ["archive_driver_case"]
