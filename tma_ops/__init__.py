"""tma-ops: the preventive maintenance cycle for agency-run websites."""

__version__ = "0.1.0"
