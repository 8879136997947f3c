"""cfnc-edge: coarse-to-fine non-contrastive anomaly detection for the edge."""

__version__ = "0.1.0"
