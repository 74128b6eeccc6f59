#!/bin/sh
# Runs once, when the PostgreSQL volume is empty (docker-entrypoint-initdb.d): one database and one
# owner per component. Passwords come from the environment (.env), never from this file.
set -eu
create() {  # user password database
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       -v usr="$1" -v pwd="$2" -v db="$3" <<'SQL'
CREATE ROLE :"usr" LOGIN PASSWORD :'pwd';
CREATE DATABASE :"db" OWNER :"usr";
SQL
}
create airflow "${AIRFLOW_DB_PASSWORD:?}" airflow
create mlflow "${MLFLOW_DB_PASSWORD:?}" mlflow
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -c 'CREATE DATABASE mlflow_auth OWNER mlflow'
create retrain "${RETRAIN_DB_PASSWORD:?}" retrain
