# Image for the Airflow components running Newswire's DAGs (used by docker-compose.yml).

# Builder stage: the package as a wheel, with its C extension (transform._scoring, the scoring kernel) compiled by a
# compiler the runtime image does not carry.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY newswire ./newswire
COPY ingest ./ingest
COPY transform ./transform
COPY pipeline ./pipeline
RUN pip wheel --no-cache-dir --no-deps -w /wheels . && python -c "import zipfile, glob; \
    names = zipfile.ZipFile(glob.glob('/wheels/*.whl')[0]).namelist(); \
    assert any(n.startswith('transform/_scoring') and n.endswith('.so') for n in names), 'C kernel not built'"

FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 AIRFLOW_HOME=/opt/airflow
RUN useradd --create-home --uid 50000 airflow
WORKDIR /opt/newswire
COPY --from=build /wheels /tmp/wheels
COPY dags ./dags
RUN pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels \
    && mkdir -p /opt/airflow /var/lib/newswire && chown -R airflow /opt/airflow /var/lib/newswire
USER airflow
ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/newswire/dags
