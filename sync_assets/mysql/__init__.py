"""Legacy MySQL/MariaDB tables copied into PostgreSQL, one asset per table."""
