"""Per-utterance feature extractors, grouped into named profiles (`lite`, `research`)."""
