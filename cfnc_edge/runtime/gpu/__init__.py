"""The GPU fast path: CuPy kernel for the distance, GPU postprocessing, TensorRT.

Nothing here is imported unless a GPU path is asked for: the package imports
and runs on machines without CUDA, CuPy or TensorRT.
"""
