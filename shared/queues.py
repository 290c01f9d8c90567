"""The Celery queue linesync's tasks go to (shared so that the CLI and the workers agree).

There is one: the pipeline's loops are not tasks (workers/engine.py). Its Redis
key carries the install's prefix (workers/celery_app.py), so its name need not.
"""

TASKS = "linesync.tasks"   # resync runs and their chunks

ALL = (TASKS,)
