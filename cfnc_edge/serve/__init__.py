"""Serving: the Inspector behind NVIDIA Triton Inference Server (through PyTriton), and its client."""
