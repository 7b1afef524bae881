"""The experiment folder and where it lives: layout and metadata, object storage, results
as DataFrames, signatures, provenance, a sweep's settings. No Ray, no torch."""
