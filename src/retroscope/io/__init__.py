"""retroscope.io: file formats and safe writing, the lowest layer of the package.

:mod:`.atomic` writes every file through a temporary name and ``os.replace``; :mod:`.readers`
reads experimental images (PNG, TIFF, NPY, HDF5, CXI) and writes the PNG and CXI files the demo
and the tests read back. Nothing here knows tasks, networks or runs.
"""
