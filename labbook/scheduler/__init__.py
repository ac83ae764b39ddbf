"""The scheduler: one elected APScheduler process (``flask --app labbook scheduler``) that
runs the features' idempotent jobs. Web workers never start it."""
