"""Run exports on Lava: Processes and their models (``processes/``, incl. the network Process), the
op -> Process bindings (``bindings``), the run helper (``run``) and test-set evaluation (``evaluate``).

Import the modules explicitly; this package stays import-light.
"""
