"""How MoMKE learns and is measured: the feature-corpus format, the two training stages,
evaluation under every modality condition (its metrics are models/metrics.py), and corpora made
without media (label-matched pseudo-conversations, the toy corpus, the paper's feature layout)."""
