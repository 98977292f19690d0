"""Names the command line offers before torch is imported, so that ``ganprior restore`` with a bad input
answers at once (tests check these against the method registry and the DGP schedules)."""

#: restoration methods registered by ``ganprior.methods``
METHODS: tuple[str, ...] = ("cri", "dgp", "pti", "pulse", "w", "wplus")
#: method presets (``ganprior.methods.presets``): ``official`` (the default) reproduces the released code,
#: ``paper`` the paper's text where it differs, ``fast`` is ``official`` shortened, ``code`` = ``official`` (old name)
PRESETS: tuple[str, ...] = ("official", "paper", "fast", "code")
DEFAULT_PRESET = "official"
#: DGP fine-tuning schedules (``ganprior.methods.dgp_presets``)
DGP_SCHEDULES: tuple[str, ...] = ("colorize", "inpaint", "sr-mse", "sr-d", "hybrid", "reconstruct", "defence",
                                  "manipulation")
