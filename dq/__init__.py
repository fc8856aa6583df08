"""Data quality: Great Expectations validation into reports, kept, and the publication gate."""
