#!/bin/sh
# Starts the tracking server: PostgreSQL backend store, basic auth, artifact proxy.
#
# Required environment (the deployment's .env, never committed):
#   MLFLOW_BACKEND_STORE_URI       postgresql://mlflow:...@postgres:5432/mlflow
#   MLFLOW_ARTIFACTS_DESTINATION   s3://mlflow-artifacts (MinIO through MLFLOW_S3_ENDPOINT_URL) or a path
#   MLFLOW_AUTH_DATABASE_URI       the user store, e.g. postgresql://mlflow:...@postgres:5432/mlflow_auth
#   MLFLOW_AUTH_ADMIN_PASSWORD     the first admin's password (used once, when the user store is empty)
#   MLFLOW_FLASK_SERVER_SECRET_KEY the auth app's CSRF key (the same on every replica)
# Optional: MLFLOW_AUTH_ADMIN_USERNAME (admin), MLFLOW_HOST (0.0.0.0), MLFLOW_PORT (5000),
#   MLFLOW_WORKERS (2), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / MLFLOW_S3_ENDPOINT_URL for MinIO.
set -eu
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI (the PostgreSQL backend store)}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (s3://bucket or a path)}"
: "${MLFLOW_AUTH_DATABASE_URI:?set MLFLOW_AUTH_DATABASE_URI (the basic-auth user store)}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD (the first admin password)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (the auth app CSRF key)}"
here="$(cd "$(dirname "$0")" && pwd)"
conf="${TMPDIR:-/tmp}/mlflow-basic-auth.ini"
# the URL may hold a password: it goes to a file only this user can read, never to the image
umask 077
# (python, not sed: a password may hold any character)
python - "${MLFLOW_AUTH_TEMPLATE:-$here/basic_auth.ini}" "$conf" <<'PY'
import os, sys
text = open(sys.argv[1]).read()
text = text.replace("__MLFLOW_AUTH_DATABASE_URI__", os.environ["MLFLOW_AUTH_DATABASE_URI"].replace("%", "%%"))
text = text.replace("__MLFLOW_AUTH_ADMIN_USERNAME__", os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin"))
open(sys.argv[2], "w").write(text)
PY
export MLFLOW_AUTH_CONFIG_PATH="$conf"
exec mlflow server \
    --app-name basic-auth \
    --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
    --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
    --serve-artifacts \
    --host "${MLFLOW_HOST:-0.0.0.0}" \
    --port "${MLFLOW_PORT:-5000}" \
    --workers "${MLFLOW_WORKERS:-2}" \
    "$@"
