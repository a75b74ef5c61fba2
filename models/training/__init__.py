"""How MoMKE learns and is measured: the feature-corpus format, the two training stages,
evaluation under every modality condition, metrics, and corpora made without media
(label-matched pseudo-conversations, the toy corpus, the paper's feature layout)."""
