"""Sources of raw transactions: file drops (landing folder) today; object storage and SQL later."""
