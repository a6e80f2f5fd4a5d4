"""The pure core: events, configuration, schedules, state and the reducer.

Nothing in this package reads a clock, draws randomness, logs or does I/O.
"""
