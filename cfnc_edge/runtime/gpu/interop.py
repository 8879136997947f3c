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
