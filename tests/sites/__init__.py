"""Small apps served by real servers (gunicorn, uvicorn, a Celery worker) in subprocesses."""
