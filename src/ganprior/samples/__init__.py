"""K restorations of one photo that all reproduce the observation, and what their spread says.

``maps``: per-pixel uncertainty (spread of the samples) and hallucination (``x − A⁺A x``);
``calibration``: does the uncertainty predict the error (correlation, AUSE vs chance);
``render``: the maps as images and the samples sheet; ``restore``: ``restore_samples`` and the run folder.
Nothing is imported here, so the CLI can read :data:`MAX_SAMPLES` before torch loads.
"""

#: most samples one call makes (each is a full restoration; the sheet shows them all)
MAX_SAMPLES = 16
