"""``ganprior ui``: a browser page for restoration (needs the ``ui`` extra: ``pip install 'ganprior[ui]'``).

``inputs`` turns what the page sends into ``restore``'s arguments, ``jobs`` runs one optimisation at a
time per device with live progress and Stop, ``report`` saves, scores and zips a finished run,
``manipulate`` holds jitter/morph/transfer, ``handlers`` is the server state behind the buttons and
``app`` lays out the page.
"""
