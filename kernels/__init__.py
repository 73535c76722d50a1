"""fastnet's compute kernels: pure array functions, one package per op family.

Each family (``kernels.conv``, ``kernels.pool``, ...) has ``reference.py`` (plain NumPy,
the specification), ``cpu.py`` (Numba) and public wrappers in its ``__init__.py`` that
validate inputs and dispatch. This package never imports ``fastnet``.

Note: PyPI hosts an unrelated distribution called ``kernels``; this one ships inside the
``fastnet`` distribution.
"""
