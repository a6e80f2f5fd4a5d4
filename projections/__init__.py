"""Read side: projector runner and read models built from derived events."""
