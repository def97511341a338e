"""Where and how code runs, not what it computes: device, precision and memory layout (``device``),
processes under torchrun (``distributed``), how the C allocator keeps freed memory (``allocator``), atomic file
writes (``files``), the cache folder and the source fingerprints that key it (``cache``), and the committed
records of finished results (``records``).

The bottom layer of ldlib with ``ldlib.data``: it imports nothing else from the package.
"""
