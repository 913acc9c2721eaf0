"""AdminService: register and remove models. Features jobs run in the admin process; generator
jobs run on the indexing fleet (embedded in the admin, or Celery workers behind a broker)."""
