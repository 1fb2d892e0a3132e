"""Pieces shared by the FTP and MySQL sides: settings, PostgreSQL writing, locks, secrets."""
