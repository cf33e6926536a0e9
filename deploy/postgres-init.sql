-- Databases and roles for docker-compose.yml: Airflow's metadata DB and Newswire's warehouse.
CREATE ROLE airflow LOGIN PASSWORD 'airflow';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE newswire LOGIN PASSWORD 'newswire';
CREATE DATABASE newswire OWNER newswire;
