# The image of shopstream's own services for docker-compose (the schema registry first).
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir '.[stack,events]'
EXPOSE 8081
CMD ["python", "-m", "shopstream.registry"]
