# Image for the Airflow components running Newswire's DAGs (used by docker-compose.yml).
FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 AIRFLOW_HOME=/opt/airflow
RUN useradd --create-home --uid 50000 airflow
WORKDIR /opt/newswire
COPY pyproject.toml README.md ./
COPY newswire ./newswire
COPY ingest ./ingest
COPY transform ./transform
COPY pipeline ./pipeline
COPY dags ./dags
RUN pip install --no-cache-dir . && mkdir -p /opt/airflow /var/lib/newswire && chown -R airflow /opt/airflow /var/lib/newswire
USER airflow
ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/newswire/dags
