"""Machine log files fetched from FTP and loaded into PostgreSQL exactly once."""
