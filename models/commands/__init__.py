"""What a user runs on the research side, above everything it uses: the `momke` CLI,
feature corpora built from media (corpus_readers -> extract_corpus) and the default
checkpoint's recipe (recipes/*.json)."""
