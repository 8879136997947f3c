"""PyTorch and CuPy on one CUDA stream, tensors handed over without a copy.

Both libraries run in the device's primary context, so a CuPy
ExternalStream on PyTorch's stream handle is the same queue: the features
the model writes, the distance kernel that reads them and the maps made
from the distances are ordered by the stream itself, with no event or host
synchronisation between them, and memory that PyTorch's caching allocator
recycles on that stream is only reused by work queued after its last use.
"""

from __future__ import annotations


def shared_stream(torch_stream, cupy):
    """CuPy's handle on a PyTorch CUDA stream: the same queue, on the device it was made on.

    `cupy` is the module, passed in so that this wiring is checkable without CUDA.
    """
    return cupy.cuda.ExternalStream(torch_stream.cuda_stream, torch_stream.device.index)


def hand_off(tensor, xp):
    """A PyTorch tensor as an `xp` array (CuPy on the GPU, NumPy on the CPU)
    over the same memory, through DLPack.

    The consumer asks for the tensor on its current stream; when that is the
    producer's stream (shared_stream), PyTorch adds no wait. Broadcast views
    (the identity transforms of a model without alignment) are made dense
    first, since the distance and map code index them as dense arrays.
    """
    return xp.from_dlpack(tensor.detach().contiguous())


def capture_view(tensor, cupy):
    """A contiguous CUDA tensor as a CuPy array over the same memory, made on
    the host alone: no DLPack stream handshake, no allocation, no CUDA call.
    That is what a CuPy kernel launched inside a PyTorch graph capture needs
    (runtime/gpu/frame_graph.py): any allocation from CuPy's pool during the
    capture would be memory the graph keeps using after CuPy hands it out again.
    The array holds the tensor, so the memory lives as long as both."""
    if not tensor.is_contiguous():
        raise ValueError("capture_view needs a contiguous tensor (make it contiguous before the capture)")
    mem = cupy.cuda.UnownedMemory(tensor.data_ptr(), tensor.numel() * tensor.element_size(), tensor,
                                  tensor.device.index)
    dtype = {"torch.float32": cupy.float32, "torch.float16": cupy.float16}[str(tensor.dtype)]
    return cupy.ndarray(tuple(tensor.shape), dtype, cupy.cuda.MemoryPointer(mem, 0))
