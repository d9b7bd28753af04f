# The image of shopstream's own services for docker-compose: schema registry, writers, simulator,
# and the one-shot init (migrations, connectors, schemas).
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -e '.[stack,events,api]'
EXPOSE 8000 8081 8090 50051
CMD ["python", "-m", "shopstream.registry"]
