"""A job split into shards and run on a Ray cluster: the shard manifest (``manifest``), what runs on a node (``tasks``), and the driver
that schedules, retries, watches and merges (``driver``). Ray is imported only when a job runs on it."""
