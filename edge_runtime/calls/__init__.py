"""Tool calls, independent of any one call format: schemas (normalise, validate) and the
vocabulary index that token-level constrained decoding walks."""
