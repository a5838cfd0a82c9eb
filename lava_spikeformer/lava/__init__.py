"""Run exports on Lava: custom Processes (``processes``) and the network loader (``network``).

Import ``lava_spikeformer.lava.network`` explicitly; this package stays import-light.
"""
