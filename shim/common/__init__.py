"""What every part shares: errors and exit statuses, the configuration, trusted files, deadlines."""
