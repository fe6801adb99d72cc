"""Evaluation: quality and collapse metrics (`metrics`), the A/B comparison (`comparison`), the report (`report`)."""
