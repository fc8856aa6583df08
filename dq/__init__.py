"""Data quality as code: Great Expectations suites per table and the publication gate."""
