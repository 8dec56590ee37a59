#!/bin/sh
# The image's processes by name (compose.yaml, docs/deploy.md). The same lines run as plain
# processes in tests/test_deploy.py. Anything else is executed as given.
set -eu
: "${SWARM_HOST:=0.0.0.0}"
: "${SWARM_PORT:=8000}"
case "${1:-web}" in
  migrate)
    # One-shot before the others start: schema, then the keys every process reads from var/.
    python manage.py migrate --noinput
    exec python manage.py swarm_keys
    ;;
  web)
    exec daphne -b "$SWARM_HOST" -p "$SWARM_PORT" swarmweb.asgi:application
    ;;
  worker)
    exec celery -A swarmweb worker --loglevel=info --concurrency="${SWARM_WORKER_CONCURRENCY:-2}"
    ;;
  beat)
    exec celery -A swarmweb beat --loglevel=info
    ;;
  superpeer)
    exec python manage.py superpeer
    ;;
  *)
    exec "$@"
    ;;
esac
