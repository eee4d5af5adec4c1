"""pitstop: keep container runtimes and Kubernetes clusters current across a fleet, without
taking services down."""

__version__ = "0.1.0"
__all__ = ["__version__"]
