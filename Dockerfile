# The image of shopstream's own services for docker-compose: schema registry, writers, dataflows,
# the OLAP service, simulator,
# and the one-shot init (migrations, connectors, schemas).
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -e '.[stack,events,api,streams,olap,integrations]'
EXPOSE 8000 8081 8090 8091 8097 8124 9465 50051
CMD ["python", "-m", "registry"]
