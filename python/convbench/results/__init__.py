"""Layer 2: results, pure Python. The Record of one cell, the results document (header, sections,
atomic save, load), the analysis derived from records (ladder, cross-checks, layer tables,
conv prediction) and the comparison of two runs."""
