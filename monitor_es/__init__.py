"""monitor-es: cron-job monitoring as an event-sourced state machine on Redis Streams."""

__version__ = "0.1.0"
