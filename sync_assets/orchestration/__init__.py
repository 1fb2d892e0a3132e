"""Jobs, schedules and run-level operations (the cadences of the old cron container)."""
