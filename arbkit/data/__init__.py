"""Market data: the generator, the Parquet store and importers of vendor files."""
