"""DAMF's Gaussian-mixture prior: ``gmm_fitting`` (host-neutral BIC model selection) and
``gmm_nll_loss`` (mmdet ``MODELS``). Imported by the entry points, not here."""
